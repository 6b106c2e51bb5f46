"""What the channel can do with an interrupted step: Retry (through the normal request path)
or Mark done (a two-person decision when the step is gated). For a rollback step, interrupted
or failed: Retry asks to resume the rollback at that step (``rollback_requests``), and Mark
done follows the rollback's approval rule, then continues the plan."""

from __future__ import annotations

import psycopg

from bot.engine.core import ROLLBACK, Actor, Refused, rule_gate_default
from bot.engine.requests import Requests
from bot.slack import blocks
from bot.store import repo
from runbook.rules import approvals as rule

NOT_STOPPED_HERE = ("The rollback is no longer stopped at this step (its run was finished, "
                    "or the cutover moved on since), so nothing was done. `/golive status` "
                    "shows where things stand; `/golive rollback` asks for a new plan.")


class Recovery(Requests):
    """See the module docstring."""

    def _interrupted(self, conn: psycopg.Connection, execution_id: int,
                     states: tuple[str, ...], what: str) -> dict:
        exe = repo.get_execution(conn, execution_id=execution_id, for_update=True)
        if exe is None or exe["state"] not in states:
            raise Refused(f"Only an {' or '.join(states)} step can be {what}.")
        latest = repo.latest_executions(conn, run_id=exe["run_id"]).get(exe["step_id"])
        if latest and latest["id"] != exe["id"]:
            raise Refused("This step has been requested again since; see `/golive status`.")
        run = repo.get_run(conn, run_id=exe["run_id"])
        if self.runbook.step(exe["step_id"]).phase != ROLLBACK and (
                run is None or run["status"] != "active"):
            # A closed run's record stays as it was; its notice must not act on the next run.
            raise Refused(f"Run #{exe['run_id']} is closed, so this step can no longer be "
                          f"{what}; nothing was done. `/golive status` shows the active run.")
        return exe

    def retry(self, *, execution_id: int, user_id: str, channel: str) -> str:
        """Request an interrupted or failed step again, through the normal request path; a
        rollback step: ask to resume the rollback at it (approved like any rollback)."""
        with self.db.transaction() as conn:
            exe = self._interrupted(conn, execution_id, ("interrupted", "failed"), "retried")
            step = self.runbook.step(exe["step_id"])
            if step.phase == ROLLBACK and not self._stops_here(conn, exe):
                raise Refused(NOT_STOPPED_HERE)
        if step.phase == ROLLBACK:
            return self.request_rollback(
                actor=Actor(user_id, channel),
                reason=f"retry of {step.id} (attempt {exe['attempt']} {exe['state']})")
        line = self._request_step(actor=Actor(user_id, channel), step=step,
                                  args=dict(exe["params"]), override=exe["override_reason"],
                                  auto_start=False)
        self._wake.set()
        return line

    def mark_done(self, *, execution_id: int, user_id: str, channel: str, reason: str) -> str:
        """Treat an interrupted step (or a failed rollback step) as done: at once for an
        ungated step, after a second person approves for a gated one (or a rollback step, when
        rollback is gated). A rollback then continues after the step."""
        reason = reason.strip()
        if not reason:
            raise Refused("Say why the step can be treated as done.")
        with self.db.transaction() as conn:
            exe = self._interrupted(conn, execution_id, ("interrupted", "failed"),
                                    "marked done")
            step = self.runbook.step(exe["step_id"])
            rollback = step.phase == ROLLBACK
            if exe["state"] == "failed" and not rollback:
                raise Refused("Only an interrupted step can be marked done; a failed cutover "
                              "step is retried.")
            if rollback and not self._stops_here(conn, exe):
                raise Refused(NOT_STOPPED_HERE)
            if not (step.gated or (rollback and self.deps.rollback_gated)):
                self._treat_as_done(conn, execution_id=execution_id, requester=user_id,
                                    reason=reason, channel=channel, approved_by=None)
                approval = None
            else:
                gate = (self.runbook.rollback_gate if rollback else step.gate) \
                    or rule_gate_default()
                bound = {"execution": exe["id"], "attempt": exe["attempt"], "reason": reason,
                         "state": exe["state"]}
                now = self.deps.now()
                try:
                    with conn.transaction():
                        approval = repo.insert_approval(
                            conn, run_id=exe["run_id"], step_id=step.id,
                            action=f"mark-done of {step.title}", params=bound,
                            params_hash=rule.params_hash(exe["run_id"], step.id, bound),
                            requester=user_id, required=gate.approvals,
                            groups=list(gate.groups), reason=reason, channel=exe["channel"],
                            now=now, expires_at=now + self.deps.expiry, kind="mark_done")
                except psycopg.errors.UniqueViolation:
                    raise Refused(f"*{blocks.esc(step.title)}* already has a pending approval "
                                  "request; see `/golive status`.") from None
                self._audit(conn, actor=user_id, channel=channel, action="approval.requested",
                            outcome="pending", run_id=exe["run_id"],
                            detail={"step": step.id, "kind": "mark_done", "reason": reason,
                                    "execution": exe["id"], "approval": approval["id"]})
                self._approval_changed(conn, approval)
        if approval is None:
            self._wake.set()
            return f"Marked *{blocks.esc(step.title)}* done."
        return (f"*{blocks.esc(step.title)}* is gated, so treating it as done is a two-person "
                "decision: an approval card is in the channel, and someone other than you must "
                "approve it.")
