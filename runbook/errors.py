"""Step errors: the lowest layer of ``runbook``, importable by adapters and step kinds alike.

Adapters raise these; ``runbook.steps.base`` re-exports them for the step kinds and the engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["StepFailed", "StepNotAvailable"]


class StepFailed(Exception):
    """A step failed for a reason the channel should read (no secrets, no stack trace)."""

    def __init__(self, message: str, *, facts: Mapping[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.facts = dict(facts or {})


class StepNotAvailable(StepFailed):
    """The step kind is listed in the runbook but not built yet; it never pretends to succeed."""
