"""The contract between the engine and a runbook step implementation.

A step kind is a callable ``run(ctx) -> StepResult`` registered under a name with
``@step_kind("deploy")``. The engine persists ``running`` before calling it and the outcome
after; a step never touches the bot's own database or Slack directly, it only reports
progress through ``ctx.progress`` and returns facts for later steps (and rollback).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

# The context and the errors live below the adapters (which use them); re-exported here.
from runbook.context import StepContext, StepResult
from runbook.errors import StepFailed, StepNotAvailable

__all__ = ["REGISTRY", "Registered", "StepContext", "StepFailed", "StepKind", "StepNotAvailable",
           "StepResult", "not_available", "step_kind"]


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
