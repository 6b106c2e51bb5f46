"""The sample stack of tests/integration for the autopilot's night (session-scoped there)."""

from tests.integration.conftest import paybox, stack  # noqa: F401  (fixtures)
