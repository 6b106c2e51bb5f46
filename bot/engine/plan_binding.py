"""Approvals bound to the plan at the request (issue 20, item 2).

A gated step's request computes the step's part of the plan (``PlanParts.compute``) before the
engine's transaction opens (``StepRequests.prepare``: kept a minute, taken once by its own
request); the approval binds its ``step_digest`` (``bot.engine.binding.bind(plan=...)``, so the
approval hash covers it) and :meth:`PlanBinding.store` keeps the part itself with the approval
(``step_plans``, migration 0017) for the card (``bot.engine.plan_card``) and for naming drift
at the claim (``bot.engine.plan_drift``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from bot.engine.plan_parts import PlanParts
from runbook.model import Step
from runbook.plan.digest import step_digest
from runbook.plan.model import Plan, plan_to_dict
from runbook.rules.canonical import canonical_json

KEEP_S = 60.0
"""How long a part prepared before a request's transaction is used by that request."""
REQUEST_BUDGET_S = 5.0
"""How long a request waits for its step's plan part inside its transaction (the command's
handling has 10 s): when none was prepared before it."""
PREPARE_BUDGET_S = 30.0
"""How long the part prepared before a request's transaction may take (a migration's renders
the SQL in the RC image: seconds, more on a loaded machine)."""


class PlanBinding:
    """See the module docstring. Built by the facade; the request path is given it."""

    def __init__(self, *, parts: PlanParts, now: Callable[[], datetime]):
        self._parts = parts
        self._now = now
        self._lock = threading.Lock()
        self._kept: dict[str, tuple[float, Plan]] = {}

    def binds(self, step: Step) -> bool:
        """Whether a gated request of ``step`` binds its plan part: every cutover step (a
        rollback's approval binds the rollback plan: bot/engine/rollback_requests.py)."""
        return step.phase != "rollback"

    def part(self, *, run: Mapping[str, Any], step: Step, params: Mapping[str, Any],
             prepare: bool = False) -> Plan:
        """The part a request binds. ``prepare``: computed before the request's transaction
        (up to ``PREPARE_BUDGET_S``) and kept for it; else the one so prepared, or one computed
        now (given up after ``REQUEST_BUDGET_S``)."""
        plan = None if prepare else self.prepared(run=run, step=step, params=params)
        if plan is None:
            plan = self._parts.compute_within(PREPARE_BUDGET_S if prepare else REQUEST_BUDGET_S,
                                              run=run, step=step, params=params)
            if prepare:
                self.keep(run=run, step=step, params=params, plan=plan)
        return plan

    # Parts computed before a request's transaction, kept briefly: the request takes its own,
    # once. A stale one is harmless: the claim recomputes.
    @staticmethod
    def _key(run: Mapping[str, Any], step: Step, params: Mapping[str, Any]) -> str:
        return canonical_json({"run": run["id"], "tag": run.get("rc_tag"), "step": step.id,
                               "params": dict(params)})

    def keep(self, *, run: Mapping[str, Any], step: Step, params: Mapping[str, Any],
             plan: Plan) -> None:
        """Keep a part prepared before its request's transaction (``KEEP_S`` at most)."""
        with self._lock:
            now = time.monotonic()
            self._kept = {k: v for k, v in self._kept.items() if now - v[0] < KEEP_S}
            self._kept[self._key(run, step, params)] = (now, plan)

    def prepared(self, *, run: Mapping[str, Any], step: Step, params: Mapping[str, Any]
                 ) -> Plan | None:
        """The part kept for this request (taken once; None: none, or kept too long)."""
        with self._lock:
            got = self._kept.pop(self._key(run, step, params), None)
        return got[1] if got is not None and time.monotonic() - got[0] < KEEP_S else None

    def store(self, conn: psycopg.Connection, *, approval: Mapping[str, Any],
              plan: Plan) -> None:
        """Keep the part an approval request shows and binds (in the request's transaction)."""
        conn.execute(
            "INSERT INTO step_plans (approval_id, run_id, step_id, digest, plan, created_at)"
            " VALUES (%s,%s,%s,%s,%s,%s)",
            (approval["id"], approval["run_id"], approval["step_id"],
             step_digest(plan, approval["step_id"]), Jsonb(plan_to_dict(plan)), self._now()))
