"""What a step is given and what it returns: below the adapters, which take a context too.

``runbook.steps.base`` re-exports both, so step kinds and the engine import them from there.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["StepContext", "StepResult"]


@dataclass(frozen=True)
class StepContext:
    run_id: int
    step_id: str
    params: Mapping[str, Any]
    """The runbook step's params merged with the command's arguments (e.g. ``tag``)."""
    facts: Mapping[str, Any]
    """Facts recorded by earlier steps of this run (``rc_sha``, ``previous_images``, ...)."""
    target: Any
    """``runbook.target.TargetConfig``: the stack being cut over (from GOLIVE_CONFIG)."""
    progress: Callable[[str], None]
    """Report a line of progress; the engine throttles it into one message updated in place."""
    deadline: float
    """``clock()`` value after which the step must give up (its timeout)."""
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    secrets: Mapping[str, str] = field(default_factory=dict)
    """Secret values (target DB URL, admin password, ops token); mask them in any output."""
    emit: Callable[[str, Mapping[str, Any]], None] = lambda _kind, _record: None
    """Report a structured record to the engine as it happens (``("check", result)`` for each
    finished preflight check); the engine stores it and updates the step's card."""
    config: Any = None
    """The team config (``bot.team_config.GoliveConfig``) for kinds with a section of their own
    (``[preflight]``); None when the engine runs without one."""

    def remaining(self) -> float:
        return max(0.0, self.deadline - self.clock())


@dataclass(frozen=True)
class StepResult:
    summary: str
    """One line for the channel, e.g. ``app: v1 -> v2 (sha 1a2b3c4)``."""
    facts: Mapping[str, Any] = field(default_factory=dict)
    """Merged into the run's facts; rollback reads them (previous images, alembic revisions)."""
    detail: str = ""
    """Longer text (output tails); posted as a file when it is long."""
