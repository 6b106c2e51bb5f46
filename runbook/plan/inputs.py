"""What a plan is computed for (:class:`PlanInputs`) and what its sources found (:class:`Found`,
handed from the sources to the steps' parts: ``runbook.plan.kinds``). Pure."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from runbook.plan.model import MigrationPlan, ServiceChange, Unresolved


@dataclass
class PlanInputs:
    """What the plan is computed for, besides the runbook and the target."""

    rc_tag: str | None
    run_id: int | None = None
    run_facts: Mapping[str, Any] = field(default_factory=dict)
    """the run's facts (rc_sha, snapshot_taken_at, previous_images, ...)"""
    history: Mapping[str, Sequence[float]] = field(default_factory=dict)
    """step id -> durations (s) of its recorded successful attempts"""
    secrets: Mapping[str, str] = field(default_factory=dict)
    """extra secret values to mask (the target's own are added)"""
    url_variable: str | None = None
    """the env var the team's env.py reads its URL from, when [target.migrations] has none
    (e.g. [preflight.migration_check] url_variable)"""
    database_url: str | None = None
    """the target database when [target.migrations] database_url is unset"""
    squawk: bool = True
    now: Callable[[], datetime] = lambda: datetime.now(UTC)


@dataclass
class Found:
    """The values read from the real systems, shared by the steps that show them."""

    services: list[ServiceChange] = field(default_factory=list)
    deploy_unresolved: list[Unresolved] = field(default_factory=list)
    migration: MigrationPlan | None = None
    migration_unresolved: list[Unresolved] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

