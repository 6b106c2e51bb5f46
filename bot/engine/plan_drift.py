"""Drift at the claim (issue 20, item 2): an approval is void when the plan moved since.

Before the claim's transaction the worker recomputes the part of each queued step that could
start now (:meth:`PlanDrift.before_claim`, outside any transaction: the sources take seconds);
the claim binds the fresh digest in the hash it compares (the claim's compare-and-set stays the
one gate, ``bot.engine.claim``), and when it moved the approval is void with what changed, from
what to what (``runbook.plan.digest.diff``), or with what the fresh part could not resolve.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg

from bot.engine.binding import step_params
from bot.engine.plan_parts import PlanParts
from bot.store import repo
from bot.store.db import Database
from runbook.model import Runbook, Step
from runbook.plan.digest import PlanChange, diff, step_digest
from runbook.plan.model import Plan


@dataclass
class Fresh:
    """The step parts recomputed before one claim: execution id -> the part (a one-step plan)."""

    plans: dict[int, Plan] = field(default_factory=dict)

    def missing(self, exe: Mapping[str, Any], step: Step, drift: PlanDrift) -> bool:
        """Whether this queued step needs a fresh part and has none (it waits for the next
        round: it became claimable after the parts were computed)."""
        return drift.wants(exe, step) and exe["id"] not in self.plans


class PlanDrift:
    """See the module docstring. Built by the facade; the worker and the claim are given it."""

    def __init__(self, *, db: Database, runbook: Runbook, parts: PlanParts):
        self._db = db
        self._runbook = runbook
        self._parts = parts

    def wants(self, exe: Mapping[str, Any], step: Step) -> bool:
        """Whether the claim of ``exe`` needs its part recomputed: its approval binds one (an
        ungated step's part is computed while it runs: ``PlanCertifier.while_running``)."""
        return step.phase != "rollback" and bool(exe.get("approval_id"))

    def before_claim(self) -> Fresh:
        """Recompute the part of each queued step that could be claimed now (its run has no
        step running and its requirements succeeded), outside any transaction."""
        fresh = Fresh()
        with self._db.connection() as conn:
            rows = conn.execute(
                "SELECT e.id, e.run_id, e.step_id, e.params, e.approval_id, e.override_reason,"
                " r.rc_tag, r.facts"
                " FROM step_executions e JOIN runs r ON r.id = e.run_id"
                " WHERE e.state = 'queued' AND NOT EXISTS (SELECT 1 FROM step_executions o"
                "  WHERE o.run_id = e.run_id AND o.state = 'running') ORDER BY e.id LIMIT 10"
            ).fetchall()
            states: dict[int, dict[str, str]] = {}
            for r in rows:
                if r["run_id"] not in states:
                    states[r["run_id"]] = {step_id: x["state"] for step_id, x in
                                           repo.latest_executions(conn, run_id=r["run_id"]).items()}
        for r in rows:
            try:
                step = self._runbook.step(r["step_id"])
            except KeyError:
                continue
            if not self.wants(r, step) or (not r["override_reason"] and self._runbook
                                           .unmet_requirements(step.id, states[r["run_id"]])):
                continue
            fresh.plans[r["id"]] = self._parts.compute(
                run={"id": r["run_id"], "rc_tag": r["rc_tag"], "facts": r["facts"]},
                step=step, params=step_params(step, r["params"]))
        return fresh

    def claim_digest(self, exe: Mapping[str, Any], approval: Mapping[str, Any],
                     fresh: Fresh | None) -> str | None:
        """The digest the claim binds in the hash it compares: the fresh part's, when the
        approval bound one (None: it bound none, or there is no fresh part this round)."""
        if not approval["params"].get("plan") or fresh is None:
            return None
        plan = fresh.plans.get(exe["id"])
        return step_digest(plan, exe["step_id"]) if plan is not None else None

    def drift(self, conn: psycopg.Connection, exe: Mapping[str, Any],
              fresh: Fresh | None) -> list[PlanChange]:
        """What moved in the step's part since its approval (empty: nothing, or not known)."""
        plan = fresh.plans.get(exe["id"]) if fresh is not None else None
        old = self._parts.approved(conn, exe.get("approval_id"))
        if plan is None or old is None:
            return []
        changes = diff(old.step(exe["step_id"]), plan.step(exe["step_id"]))
        for field_ in ("rc_tag", "runbook_version", "target"):
            if getattr(old, field_) != getattr(plan, field_):
                changes.append(PlanChange(field_, getattr(old, field_), getattr(plan, field_)))
        return changes

    def blind_fresh(self, exe: Mapping[str, Any], fresh: Fresh) -> list[str]:
        """What the step's fresh part could not resolve that its certification needs (fail
        safe: an approved step whose plan is blind does not start)."""
        plan = fresh.plans.get(exe["id"])
        return self._parts.blind(plan, exe["step_id"]) if plan is not None else []

    def void_text(self, changes: list[PlanChange], blind: list[str]) -> str:
        """What the card says of an approval the plan voided (PlanChange strings)."""
        if changes:
            shown = "; ".join(str(c) for c in changes[:8])
            more = f"; and {len(changes) - 8} more" if len(changes) > 8 else ""
            return self._parts.mask(f"approval void: the plan moved since it was approved: "
                                    f"{shown}{more}. Request it again to approve the new values")
        return self._parts.mask("approval void: the step's plan is not resolved ("
                                + "; ".join(blind[:3])
                                + "), so it was approved blind. Request it again once it "
                                "resolves")
