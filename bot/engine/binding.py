"""What an approval binds and what the step runs with: one function for both.

``step_params`` is what a step runs with (its runbook params overlaid by the request's); the
approval's hash covers ``bind``, which holds ``step_params`` of every step the approval lets
run. The worker runs a step with ``step_params`` too, so the hash and the run cannot drift.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runbook.model import Runbook, Step

ROLLBACK = "rollback"


def plain(value: Any) -> Any:
    """Mappings and sequences as plain JSON-able dicts and lists (runbook params are frozen)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def step_params(step: Step, args: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters ``step`` runs with: the runbook's, overlaid by the request's."""
    return plain({**dict(step.params), **dict(args)})


def bind(runbook: Runbook, step_id: str, args: Mapping[str, Any], override: str | None,
         verdict: str, *, via: str | None = None, plan: str | None = None) -> dict[str, Any]:
    """What an approval binds: the request, the parameters the step(s) will really run with
    (``step_params``), the step kind, the preflight verdict and the runbook version; ``via``:
    who made the request on the requester's behalf (the approvers see it, the hash covers it);
    ``plan``: the step's part of the plan the card showed (``runbook.plan.digest.step_digest``:
    digests, compose configuration, revisions), which the claim computes again: a value that
    moved changes the hash (bot/engine/plan_drift.py).
    """
    steps = runbook.rollback if step_id == ROLLBACK else (runbook.step(step_id),)
    effective = {s.id: {"kind": s.kind, "params": step_params(s, args)} for s in steps}
    out = {"step": step_id, "args": plain(dict(args)), "override": override,
           "preflight": verdict, "effective": effective, "runbook": runbook.version}
    if via:
        out["via"] = via
    if plan:
        out["plan"] = plan
    return out
