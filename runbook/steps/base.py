"""The contract between the engine and a runbook step implementation.

A step kind is a callable ``run(ctx) -> StepResult`` registered under a name with
``@step_kind("deploy")``. The engine persists ``running`` before calling it and the outcome
after; a step never touches the bot's own database or Slack directly, it only reports
progress through ``ctx.progress`` and returns facts for later steps (and rollback).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

# The errors live below the adapters (which raise them); re-exported so imports keep working.
from runbook.errors import StepFailed, StepNotAvailable

__all__ = ["REGISTRY", "Registered", "StepContext", "StepFailed", "StepKind", "StepNotAvailable",
           "StepResult", "not_available", "step_kind"]


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
    """The team config (``bot.settings.GoliveConfig``) for kinds with a section of their own
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


class StepKind(Protocol):
    def __call__(self, ctx: StepContext) -> StepResult: ...


@dataclass(frozen=True)
class Registered:
    name: str
    run: StepKind
    available: bool
    description: str


REGISTRY: dict[str, Registered] = {}


def step_kind(name: str, *, description: str = "", available: bool = True):
    """Register a step implementation under ``name`` (the runbook's ``kind``)."""

    def deco(fn: StepKind) -> StepKind:
        REGISTRY[name] = Registered(name, fn, available, description or (fn.__doc__ or "").strip())
        return fn

    return deco


def not_available(name: str, description: str) -> None:
    """List a step kind that later work will build: running it fails, it never succeeds."""

    def run(ctx: StepContext) -> StepResult:
        raise StepNotAvailable(f"`{name}` is not available yet: {description}")

    REGISTRY[name] = Registered(name, run, False, description)
