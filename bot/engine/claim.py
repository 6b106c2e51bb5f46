"""Which queued step may start, and the claim that starts it (the worker's first half).

A queued step is claimed with a compare-and-set ``queued -> running`` under the row lock
(``FOR UPDATE SKIP LOCKED``), in the transaction that takes the step's session advisory lock
and sets its heartbeat. On the way, queued steps that can never run are cancelled and their
cards say why: something in the run failed after they were queued, their approval lapsed or
no longer matches what would run, the preflight went red, or a requirement did not succeed.
"""

from __future__ import annotations

import psycopg

from bot.engine import executions
from bot.engine.core import ROLLBACK, Shared
from bot.engine.plan_drift import Fresh, PlanDrift
from bot.engine.preflight import PreflightGate
from bot.store import repo
from runbook.model import Step
from runbook.rules import approvals as rule

RUNNING_SHOWS_AFTER_S = 1.0


class Claimer:
    """See the module docstring; ``bot.engine.worker.StepRunner`` runs what is claimed."""

    def __init__(self, shared: Shared, *, preflight: PreflightGate, plan_drift: PlanDrift):
        self._s = shared
        self._drift = plan_drift
        self._deps = shared.deps
        self._runbook = shared.runbook
        self._preflight = preflight

    def claim(self, conn: psycopg.Connection, fresh: Fresh) -> tuple[dict, dict, Step] | None:
        """Claim one runnable step; queued steps that can never run are cancelled on the way
        (their cards say why). ``fresh``: the steps' plan parts recomputed before this
        transaction (``PlanDrift.before_claim``): a step that needs one and has none waits."""
        with conn.transaction():
            for exe in repo.queued_candidates(conn):
                run = repo.get_run(conn, run_id=exe["run_id"])
                if run is None:
                    continue
                step = self._runbook.step(exe["step_id"])
                void = self.void_reason(conn, exe, step, fresh)
                if void:
                    executions.move(conn, execution_id=exe["id"], event="cancel",
                                    only=("queued",), now=self._deps.now(), error=void)
                    self._s.audit.record(conn, actor="golive", channel=exe["channel"],
                                         action="step.cancelled", outcome="cancelled",
                                         run_id=exe["run_id"],
                                         detail={"step": step.id, "why": void,
                                                 "approval": exe["approval_id"]})
                    self._s.notices.step_changed(conn, exe)
                    continue
                gate = None if exe["override_reason"] else \
                    self._preflight.refusal(conn, run, step)
                if gate:  # re-checked here: the preflight may have aged or gone red since
                    executions.move(conn, execution_id=exe["id"], event="cancel",
                                    only=("queued",), now=self._deps.now(),
                                    error=f"cancelled: {gate}")
                    self._s.audit.record(conn, actor="golive", channel=exe["channel"],
                                         action="step.cancelled", outcome="refused_preflight",
                                         run_id=exe["run_id"],
                                         detail={"step": step.id, "why": gate})
                    self._s.notices.step_changed(conn, exe)
                    continue
                states = self._s.outcomes.states(conn, exe["run_id"])
                unmet = self._runbook.unmet_requirements(step.id, states)
                if unmet and not exe["override_reason"]:
                    if any(states.get(u) in ("failed", "interrupted", "cancelled") for u in unmet):
                        executions.move(conn, execution_id=exe["id"], event="cancel",
                                        only=("queued",), now=self._deps.now(),
                                        error=f"cancelled: {', '.join(unmet)} did not succeed")
                        self._s.notices.step_changed(conn, exe)
                    continue
                if fresh.missing(exe, step, self._drift):
                    continue  # its plan part is computed before the next claim
                try:
                    with conn.transaction():
                        conn.execute("SELECT pg_advisory_lock(%s, %s)",
                                     (repo.LOCK_NS, exe["id"]))
                        moved = executions.move(conn, execution_id=exe["id"],
                                                event="claim",
                                                now=self._deps.now(),
                                                claimed_by=self._deps.worker_id)
                        if moved is not None:
                            executions.heartbeat(conn, execution_id=exe["id"])
                except psycopg.errors.UniqueViolation:
                    conn.execute("SELECT pg_advisory_unlock(%s, %s)", (repo.LOCK_NS, exe["id"]))
                    continue  # another step of this run is running
                if moved is None:
                    conn.execute("SELECT pg_advisory_unlock(%s, %s)", (repo.LOCK_NS, exe["id"]))
                    continue
                self._s.audit.record(conn, actor="golive", channel=exe["channel"],
                                     action="step.started",
                                     outcome="running", run_id=exe["run_id"],
                                     detail={"step": step.id, "attempt": exe["attempt"],
                                             "worker": self._deps.worker_id})
                # "running" shows only if the step still runs a second from now: a quick step
                # goes straight to its result, and the card's final update is never held back.
                self._s.notices.step_changed(conn, moved, delay=RUNNING_SHOWS_AFTER_S)
                return moved, run, step
        return None

    def void_reason(self, conn: psycopg.Connection, exe: dict, step: Step,
                    fresh: Fresh) -> str | None:
        """Why a queued step may no longer start, or None: something in its run failed after
        it was queued, or its approval lapsed or no longer matches what would run."""
        failed = repo.failure_since(conn, run_id=exe["run_id"], since=exe["queued_at"])
        if failed is not None:
            return (f"cancelled: {failed['step_id']} {failed['state']} after this was queued; "
                    "request it again if it should still run")
        if not exe["approval_id"]:
            return None
        a = repo.get_approval(conn, approval_id=exe["approval_id"])
        if a is None or a["status"] != "approved":
            return "approval void: the approval is no longer in force"
        first_of_plan = step.phase != ROLLBACK or step.id == (
            exe["params"].get("resume_from") or self._runbook.rollback[0].id)
        if first_of_plan and a["decided_at"] + self._deps.approval_ttl < self._deps.now():
            minutes = round(self._deps.approval_ttl.total_seconds() / 60)
            return (f"approval lapsed: the step did not start within {minutes} minutes of "
                    "its approval; request it again")
        if step.phase == ROLLBACK:
            bound = self._s.bound_params(ROLLBACK, dict(exe["params"]), None, "")
        else:
            verdict = self._preflight.verdict(conn, exe["run_id"])
            # The plan part recomputed before this transaction: a value that moved since
            # the approval changes the hash (bot/engine/plan_drift.py).
            plan = self._drift.claim_digest(exe, a, fresh)
            if a["params"].get("plan") and plan is None:
                return None  # none computed yet: the claim waits for it (Fresh.missing)
            bound = self._s.bound_params(step.id, dict(exe["params"]), exe["override_reason"],
                                         verdict, via=a["params"].get("via"), plan=plan)
        if rule.params_hash(a["run_id"], a["step_id"], bound) != a["params_hash"]:
            changes = self._drift.drift(conn, exe, fresh) if step.phase != ROLLBACK else []
            if changes:
                return self._drift.void_text(changes, [])
            return ("approval void: the parameters, the runbook or preflight changed after "
                    "approval")
        blind = self._drift.blind_fresh(exe, fresh) if step.phase != ROLLBACK else []
        if blind:
            return self._drift.void_text([], blind)
        return None
