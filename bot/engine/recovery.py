"""What the channel can do with an interrupted step: Retry (through the normal request path)
or Mark done (a two-person decision when the step is gated). For a rollback step, interrupted
or failed: Retry asks to resume the rollback at that step (``rollback_requests``), and Mark
done follows the rollback's approval rule, then continues the plan."""

from __future__ import annotations

import psycopg

from bot.engine import executions
from bot.engine.approvals import Approvals
from bot.engine.core import ROLLBACK, Refused, Requester, Shared, rule_gate_default
from bot.engine.expiry import approval_expires_at
from bot.engine.requests import StepRequests
from bot.engine.rollback import RollbackPlanner
from bot.engine.rollback_requests import Rollbacks
from bot.slack import blocks
from bot.store import repo
from runbook.rules import approvals as rule

NOT_STOPPED_HERE = ("The rollback is no longer stopped at this step (its run was finished, "
                    "or the cutover moved on since), so nothing was done. `/golive status` "
                    "shows where things stand; `/golive rollback` asks for a new plan.")


class Recovery:
    """See the module docstring."""

    def __init__(self, shared: Shared, *, requests: StepRequests, rollbacks: Rollbacks,
                 planner: RollbackPlanner, approvals: Approvals):
        self._s = shared
        self._db = shared.db
        self._deps = shared.deps
        self._runbook = shared.runbook
        self._requests = requests
        self._rollbacks = rollbacks
        self._planner = planner
        self._approvals = approvals

    def interrupted(self, conn: psycopg.Connection, execution_id: int,
                     states: tuple[str, ...], what: str) -> dict:
        exe = repo.get_execution(conn, execution_id=execution_id, for_update=True)
        if exe is None or exe["state"] not in states:
            raise Refused(f"Only an {' or '.join(states)} step can be {what}.")
        latest = repo.latest_executions(conn, run_id=exe["run_id"]).get(exe["step_id"])
        if latest and latest["id"] != exe["id"]:
            raise Refused("This step has been requested again since; see `/golive status`.")
        run = repo.get_run(conn, run_id=exe["run_id"])
        if self._runbook.step(exe["step_id"]).phase != ROLLBACK and (
                run is None or run["status"] != "active"):
            # A closed run's record stays as it was; its notice must not act on the next run.
            raise Refused(f"Run #{exe['run_id']} is closed, so this step can no longer be "
                          f"{what}; nothing was done. `/golive status` shows the active run.")
        return exe

    @staticmethod
    def owned_elsewhere(conn: psycopg.Connection, exe: dict, user_id: str) -> None:
        """Refused when an operator other than ``user_id`` has taken this step's decision (the
        decision card's *Take it*): only the owner's choice counts, from the card or from the
        interrupted notice's buttons alike. The execution row is locked by ``interrupted``, as
        it is when the owner takes the decision, so the two never interleave."""
        row = repo.decision(conn, exe["id"])
        if row and row["owner"] and row["owner"] != user_id:
            raise Refused(f"<@{row['owner']}> owns the decision on this step; "
                          "ask them, or see its decision card.")

    def prepare_retry(self, execution_id: int) -> None:
        """The plan part a Retry of ``execution_id`` will bind, computed before the click's
        transaction (``StepRequests.prepare_step``); nothing for a rollback step or an
        execution that cannot be retried (``retry`` says why)."""
        with self._db.connection() as conn:
            exe = repo.get_execution(conn, execution_id=execution_id)
        if exe is None or exe["state"] not in ("interrupted", "failed"):
            return
        try:
            step = self._runbook.step(exe["step_id"])
        except KeyError:
            return
        if step.phase != ROLLBACK:
            self._requests.prepare_step(step, exe["params"], exe["override_reason"])

    def retry(self, *, execution_id: int, user_id: str, channel: str) -> str:
        """Request an interrupted or failed step again, through the normal request path; a
        rollback step: ask to resume the rollback at it (approved like any rollback)."""
        with self._db.transaction() as conn:
            exe = self.interrupted(conn, execution_id, ("interrupted", "failed"), "retried")
            self.owned_elsewhere(conn, exe, user_id)
            step = self._runbook.step(exe["step_id"])
            if step.phase == ROLLBACK and not self._planner.stops_here(conn, exe):
                raise Refused(NOT_STOPPED_HERE)
        if step.phase == ROLLBACK:
            return self._rollbacks.request_rollback(
                actor=Requester(user_id, channel),
                reason=f"retry of {step.id} (attempt {exe['attempt']} {exe['state']})")
        line = self._requests.request_step(actor=Requester(user_id, channel), step=step,
                                           args=dict(exe["params"]),
                                           override=exe["override_reason"], auto_start=False)
        self._s.wake.set()
        return line

    def mark_done(self, *, execution_id: int, user_id: str, channel: str, reason: str) -> str:
        """Treat an interrupted step (or a failed rollback step) as done: at once for an
        ungated step, after a second person approves for a gated one (or a rollback step, when
        rollback is gated). A rollback then continues after the step."""
        reason = reason.strip()
        if not reason:
            raise Refused("Say why the step can be treated as done.")
        with self._db.transaction() as conn:
            exe = self.interrupted(conn, execution_id, ("interrupted", "failed"),
                                   "marked done")
            self.owned_elsewhere(conn, exe, user_id)
            step = self._runbook.step(exe["step_id"])
            rollback = step.phase == ROLLBACK
            if exe["state"] == "failed" and not rollback:
                raise Refused("Only an interrupted step can be marked done; a failed cutover "
                              "step is retried.")
            if rollback and not self._planner.stops_here(conn, exe):
                raise Refused(NOT_STOPPED_HERE)
            if not (step.gated or (rollback and self._deps.rollback_gated)):
                self.treat_as_done(conn, execution_id=execution_id, requester=user_id,
                                   reason=reason, channel=channel, approved_by=None)
                approval = None
            else:
                gate = (self._runbook.rollback_gate if rollback else step.gate) \
                    or rule_gate_default()
                bound = {"execution": exe["id"], "attempt": exe["attempt"], "reason": reason,
                         "state": exe["state"]}
                now = self._deps.now()
                try:
                    with conn.transaction():
                        approval = repo.insert_approval(
                            conn, run_id=exe["run_id"], step_id=step.id,
                            action=f"mark-done of {step.title}", params=bound,
                            params_hash=rule.params_hash(exe["run_id"], step.id, bound),
                            requester=user_id, required=gate.approvals,
                            groups=list(gate.groups), reason=reason, channel=exe["channel"],
                            now=now, kind="mark_done", expires_at=approval_expires_at(
                                step, now=now, config=self._deps.config,
                                default=self._deps.expiry))
                except psycopg.errors.UniqueViolation:
                    raise Refused(f"*{blocks.esc(step.title)}* already has a pending approval "
                                  "request; see `/golive status`.") from None
                self._s.audit.record(conn, actor=user_id, channel=channel,
                                     action="approval.requested",
                                     outcome="pending", run_id=exe["run_id"],
                                     detail={"step": step.id, "kind": "mark_done", "reason": reason,
                                             "execution": exe["id"], "approval": approval["id"]})
                self._approvals.changed(conn, approval)
        if approval is None:
            self._s.wake.set()
            return f"Marked *{blocks.esc(step.title)}* done."
        return (f"*{blocks.esc(step.title)}* is gated, so treating it as done is a two-person "
                "decision: an approval card is in the channel, and someone other than you must "
                "approve it.")

    def treat_as_done(self, conn: psycopg.Connection, *, execution_id: int, requester: str,
                       reason: str, channel: str, approved_by: str | None) -> dict | None:
        # A failed step only when it is a rollback's (mark_done checks before asking).
        exe = executions.move(conn, execution_id=execution_id, event="mark_done",
                              now=self._deps.now(),
                              summary=blocks.marked_done_summary(requester, reason))
        if exe is None:
            raise Refused("Only an interrupted step (or a failed rollback step) can be marked "
                          "done.")
        self._s.notices.step_changed(conn, exe)
        self._s.audit.record(conn, actor=approved_by or requester, channel=channel,
                             action="step.mark_done", outcome="succeeded", run_id=exe["run_id"],
                             detail={"step": exe["step_id"], "reason": reason,
                                     "requested_by": requester,
                                     "approved_by": approved_by})
        if self._runbook.step(exe["step_id"]).phase == ROLLBACK:
            self._rollbacks.continue_after(conn, exe, Requester(requester, channel))
        return exe
