"""The sample stack of tests/integration for the failing-migration night (session-scoped there)."""

from tests.integration.conftest import paybox, paybox_dir, stack  # noqa: F401  (fixtures)
