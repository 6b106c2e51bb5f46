"""The plan's digests and diff. Pure.

Digests hash the content (canonical JSON, ``runbook.rules.canonical``), never rendered text.
They leave out what says nothing about what the night *does*: when the plan was computed and
the expected durations (those move with every rehearsal). :func:`step_digest` hashes one step's
part, which is what an approval binds; :func:`diff` names what moved between two computations
of one step, from what to what (for voiding an approval whose values drifted).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from runbook.plan.model import Plan, StepPlan
from runbook.rules.canonical import canonical_json, sha256_hex

# Fields that are no part of what a step does (left out of the digests and of diff).
_TIMING = frozenset({"expected_s", "history"})


def _strip_timing(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_timing(v) for k, v in value.items() if k not in _TIMING}
    if isinstance(value, list | tuple):
        return [_strip_timing(v) for v in value]
    return value


def step_content(step: StepPlan) -> dict[str, Any]:
    """The step's part of the plan as plain JSON, without timing."""
    out: dict[str, Any] = _strip_timing(asdict(step))
    return out


def content(plan: Plan) -> dict[str, Any]:
    """What the plan digest covers: everything but when it was computed and the timings."""
    data = _strip_timing(asdict(plan))
    data.pop("computed_at", None)
    out: dict[str, Any] = data
    return out


def plan_digest(plan: Plan) -> str:
    """sha256 of the plan's canonical content (not of any rendering)."""
    return sha256_hex(canonical_json(content(plan), "plan"))


def step_digest(plan: Plan, step_id: str) -> str:
    """sha256 of one step's part of the plan, bound with the runbook's version and the tag."""
    bound = {"runbook_version": plan.runbook_version, "rc_tag": plan.rc_tag,
             "target": plan.target, "step": step_content(plan.step(step_id))}
    return sha256_hex(canonical_json(bound, "step plan"))


@dataclass(frozen=True)
class PlanChange:
    """What moved between two computations of a step's plan."""

    path: str
    """e.g. ``services[app].digest`` or ``migration.current``"""
    before: Any
    after: Any

    def __str__(self) -> str:
        return f"{self.path}: {_show(self.before)} → {_show(self.after)}"


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    text = value if isinstance(value, str) else canonical_json(value)
    return text if len(text) <= 120 else f"{text[:117]}..."


def _keyed(items: list[Any]) -> dict[str, Any] | None:
    """A list of records with a natural key (service, name, step_id, field, what) as a dict."""
    for key in ("service", "step_id", "field", "name", "what"):
        if items and all(isinstance(i, dict) and key in i for i in items):
            keys = [str(i[key]) for i in items]
            if len(set(keys)) == len(keys):
                return {k: i for k, i in zip(keys, items, strict=True)}
    return None


def _flatten(value: Any, path: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(v, f"{path}.{k}" if path else k, out)
        if not value:
            out[path] = {}
        return
    if isinstance(value, list):
        keyed = _keyed(value)
        if keyed is not None:
            for k, v in keyed.items():
                _flatten(v, f"{path}[{k}]", out)
            return
        if all(not isinstance(v, dict | list) for v in value):
            out[path] = list(value)
            return
        for i, v in enumerate(value):
            _flatten(v, f"{path}[{i}]", out)
        return
    out[path] = value


def diff(old: StepPlan, new: StepPlan) -> list[PlanChange]:
    """Every leaf of the step's plan that differs (timing left out), in a stable order:
    ``services[app].digest: sha256:aaa → sha256:bbb``. Empty: nothing moved."""
    a: dict[str, Any] = {}
    b: dict[str, Any] = {}
    _flatten(step_content(old), "", a)
    _flatten(step_content(new), "", b)
    paths = list(dict.fromkeys([*a, *b]))
    return [PlanChange(p, a.get(p), b.get(p)) for p in paths if a.get(p) != b.get(p)]
