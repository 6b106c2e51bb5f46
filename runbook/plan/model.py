"""The plan as data: what each step of the night will do with today's values. Pure.

A :class:`Plan` holds one :class:`StepPlan` per runbook step, in runbook order (the rollback
plan's steps last). The sources (``runbook.plan.sources``) fill it from the real systems and
mask every secret before a value lands here; whatever they could not resolve is an
:class:`Unresolved` entry with why, never an exception. This module owns the objects, their
stored form (:func:`plan_to_dict`, :func:`plan_from_dict`) and the expected durations; the
digests and the diff are ``runbook.plan.digest``'s, the Markdown and the card's lines
``runbook.plan.render``'s.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any


class PlanError(Exception):
    """The plan cannot be computed for what was asked (no run, no tag): a short reason."""


@dataclass(frozen=True)
class Unresolved:
    """A value the plan could not find out, and why (shown on the card and in the file)."""

    what: str
    why: str

    def __str__(self) -> str:
        return f"{self.what}: unresolved: {self.why}"


@dataclass(frozen=True)
class FieldChange:
    """One field of a service's compose configuration that the step changes."""

    field: str
    before: str
    after: str


@dataclass(frozen=True)
class ServiceChange:
    """One service (compose) or release container (Kubernetes) the deploy changes."""

    service: str
    image: str
    """the image reference the deploy takes, e.g. registry.example.com/team/api:v2"""
    digest: str | None
    """its manifest digest as the registry reports it now"""
    current_image: str | None = None
    current_digest: str | None = None
    """the digest that runs now (the one the deploy replaces)"""
    revision: str | None = None
    """the image's revision label (the commit it was built from), when known"""
    changes: tuple[FieldChange, ...] = ()
    """what else in the compose configuration changes for this service"""
    config_sha256: str | None = None
    """sha256 of the service's whole compose configuration at the RC's tag (environment values
    included, never shown): any change to it between approval and claim is drift"""


@dataclass(frozen=True)
class MigrationPlan:
    """The database part of the night: the revision chain and the SQL that will run."""

    current: str | None
    head: str | None
    chain: tuple[str, ...] = ()
    """the revisions from current (exclusive) to head (inclusive), oldest first"""
    sql: str = ""
    """``alembic upgrade current:head --sql``, run from the RC image as the deploy runs it"""
    findings: tuple[str, ...] = ()
    """squawk's findings on that SQL"""
    down_sql: str = ""
    """``alembic downgrade head:current --sql`` (the rollback's downgrade), when rendered"""


@dataclass(frozen=True)
class PlanCheck:
    """A URL or command a step verifies (or flips)."""

    name: str
    target: str
    expect: str = ""


@dataclass(frozen=True)
class StepPlan:
    step_id: str
    title: str
    kind: str
    command: str | None = None
    rollback: bool = False
    """a step of the rollback plan (not of the cutover)"""
    does: tuple[str, ...] = ()
    """what it will do, one line each, with today's values"""
    checks: tuple[PlanCheck, ...] = ()
    services: tuple[ServiceChange, ...] = ()
    migration: MigrationPlan | None = None
    way_back: str = ""
    """which rollback step undoes it (and the data option, with its window or SQL)"""
    gated: bool = False
    approvals: int = 0
    groups: tuple[str, ...] = ()
    """who may approve: approver groups (empty: any approver but the requester)"""
    expected_s: float | None = None
    history: int = 0
    """how many recorded successful attempts the expected duration is the median of"""
    unresolved: tuple[Unresolved, ...] = ()


@dataclass(frozen=True)
class Plan:
    runbook: str
    runbook_version: str
    target: str
    rc_tag: str | None
    run_id: int | None = None
    steps: tuple[StepPlan, ...] = ()
    unresolved: tuple[Unresolved, ...] = ()
    """what the plan as a whole could not resolve (besides each step's)"""
    computed_at: str = ""
    """ISO time it was computed (not part of the digest)"""

    def step(self, step_id: str) -> StepPlan:
        for s in self.steps:
            if s.step_id == step_id:
                return s
        raise KeyError(f"no step {step_id!r} in the plan")

    @property
    def cutover(self) -> tuple[StepPlan, ...]:
        return tuple(s for s in self.steps if not s.rollback)

    @property
    def rollback_steps(self) -> tuple[StepPlan, ...]:
        return tuple(s for s in self.steps if s.rollback)

    def all_unresolved(self) -> list[tuple[str | None, Unresolved]]:
        """(step id or None for the plan, entry) for everything not resolved."""
        out: list[tuple[str | None, Unresolved]] = [(None, u) for u in self.unresolved]
        for s in self.steps:
            out += [(s.step_id, u) for u in s.unresolved]
        return out

    @property
    def expected_total_s(self) -> float:
        """The sum of the cutover steps' expected durations (steps with no history count 0)."""
        return sum(s.expected_s or 0.0 for s in self.cutover)

    @property
    def steps_without_history(self) -> list[str]:
        return [s.step_id for s in self.cutover if s.expected_s is None]


def plan_from_dict(data: Mapping[str, Any]) -> Plan:
    """A plan stored as JSON (``content`` plus timing) back as objects."""

    def step(d: Mapping[str, Any]) -> StepPlan:
        mig = d.get("migration")
        return StepPlan(
            step_id=d["step_id"], title=d["title"], kind=d["kind"], command=d.get("command"),
            rollback=bool(d.get("rollback")), does=tuple(d.get("does") or ()),
            checks=tuple(PlanCheck(**c) for c in d.get("checks") or ()),
            services=tuple(ServiceChange(**{**c, "changes": tuple(
                FieldChange(**f) for f in c.get("changes") or ())})
                for c in d.get("services") or ()),
            migration=MigrationPlan(**{**mig, "chain": tuple(mig.get("chain") or ()),
                                       "findings": tuple(mig.get("findings") or ())})
            if mig else None,
            way_back=d.get("way_back", ""), gated=bool(d.get("gated")),
            approvals=int(d.get("approvals") or 0), groups=tuple(d.get("groups") or ()),
            expected_s=d.get("expected_s"), history=int(d.get("history") or 0),
            unresolved=tuple(Unresolved(**u) for u in d.get("unresolved") or ()))

    return Plan(runbook=data["runbook"], runbook_version=data["runbook_version"],
                target=data["target"], rc_tag=data.get("rc_tag"), run_id=data.get("run_id"),
                steps=tuple(step(s) for s in data.get("steps") or ()),
                unresolved=tuple(Unresolved(**u) for u in data.get("unresolved") or ()),
                computed_at=data.get("computed_at", ""))


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    """The plan as plain JSON (with timing), for storing; :func:`plan_from_dict` reads it."""
    out: dict[str, Any] = asdict(plan)
    return out


# --- durations -------------------------------------------------------------------------------

def median_duration(samples: Iterable[float]) -> float | None:
    """The median of recorded successful attempts (seconds), None without any."""
    xs = [float(x) for x in samples if x is not None and x >= 0]
    return float(statistics.median(xs)) if xs else None


def with_durations(steps: Sequence[StepPlan], history: Mapping[str, Sequence[float]]
                   ) -> tuple[StepPlan, ...]:
    """Each step with its expected duration: the median of its recorded attempts."""
    return tuple(replace(s, expected_s=median_duration(history.get(s.step_id, ())),
                         history=len(history.get(s.step_id, ()))) for s in steps)
