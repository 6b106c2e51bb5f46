"""One Approve/Reject/Cancel click on an approval request, decided under its row lock (exactly
once), and what an approval lets happen: the step queued, the rollback plan queued, the step
marked done. The request, its votes and its executions are read once per click."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import psycopg

from bot.engine import executions
from bot.engine.approvals import Approvals
from bot.engine.core import ROLLBACK, Refused, Requester, Shared, request_from_row
from bot.engine.preflight import PreflightGate
from bot.engine.recovery import Recovery
from bot.engine.rollback import RollbackPlanner
from bot.engine.rollback_requests import Rollbacks
from bot.store import repo
from runbook.rules import approvals as rule

QUEUED_SHOWS_AFTER_S = 0.5  # an approved step's "queued" card, if the worker is slower


class Clicks:
    """See the module docstring."""

    def __init__(self, shared: Shared, *, approvals: Approvals, preflight: PreflightGate,
                 planner: RollbackPlanner, rollbacks: Rollbacks, recovery: Recovery):
        self._s = shared
        self._db = shared.db
        self._deps = shared.deps
        self._runbook = shared.runbook
        self._approvals = approvals
        self._preflight = preflight
        self._planner = planner
        self._rollbacks = rollbacks
        self._recovery = recovery

    def click(self, *, approval_id: int, kind: str, user_id: str, channel: str,
              reason: str = "", message_ts: str | None = None) -> rule.Decision:
        """One Approve/Reject/Cancel click, decided under a row lock (exactly once).

        ``message_ts``/``channel`` are where the click came from: a click counts only on the
        approval's own card, so a button whose value names another approval decides nothing.
        """
        actor = self._deps.directory.actor(user_id)  # Slack calls stay outside the transaction
        policy = self._s.policy()
        queued_exe: list[int] = []
        with self._db.transaction() as conn:
            a = repo.get_approval(conn, approval_id=approval_id, for_update=True)
            if a is None:
                raise Refused("That approval request does not exist.")
            # Its executions, read once: the card they are on, the steps it cancels or queues.
            exes = None if a["kind"] == "mark_done" else \
                repo.executions_of_approval(conn, approval_id=a["id"])
            card = self._approvals.card_of(conn, a, exes)
            if card is None or (card, a["channel"]) != (message_ts, channel):
                raise Refused("That button does not belong to this request's card, so nothing "
                              "was decided. Use the buttons on the request's own card.")
            votes = repo.approval_votes(conn, approval_id=approval_id)
            request = request_from_row(a, votes)
            current_hash = self.current_hash(conn, a)
            now = self._deps.now()
            decision = rule.decide(request, rule.ApprovalClick(kind=kind, actor=actor,
                                                               current_params_hash=current_hash,
                                                               reason=reason), now, policy)
            self._s.audit.record(conn, actor=user_id, channel=channel,
                                 action=f"approval.{kind}",
                                 outcome=str(decision.refusal or decision.outcome),
                                 run_id=a["run_id"],
                                 detail={"approval": approval_id, "step": a["step_id"],
                                         "reason": reason or None})
            closing = decision.new_status != "pending" and a["status"] == "pending"
            if decision.outcome in (rule.DecisionOutcome.APPROVED, rule.DecisionOutcome.PARTIAL):
                repo.insert_vote(conn, approval_id=approval_id, user_id=user_id, vote="approve",
                                 now=now)
                if not closing:
                    self._approvals.changed(conn, a, exes)  # the votes so far show on the card
            if decision.outcome == rule.DecisionOutcome.REJECTED:
                repo.insert_vote(conn, approval_id=approval_id, user_id=user_id, vote="reject",
                                 now=now)
            if closing:
                # An approved step's card is touched once, by what the approval queues.
                queues_step = decision.new_status == "approved" and a["kind"] == "step"
                if not self._approvals.close(conn, a, status=decision.new_status, by=user_id,
                                             note=reason or decision.message, exes=exes,
                                             show=not queues_step):
                    # Lost a race the row lock should have prevented: never claim the win.
                    raise Refused("This request was decided a moment ago; see the card.")
                if decision.new_status == "approved":
                    queued_exe = self.after_approval(conn, a, user_id, exes)
        if queued_exe:
            self._s.wake.set()
        return decision

    def current_hash(self, conn: psycopg.Connection, a: dict) -> str:
        if a["kind"] == "mark_done":
            # Still the same interrupted attempt, and still the newest: else the request is void.
            exe = repo.get_execution(conn, execution_id=a["params"]["execution"])
            latest = repo.latest_executions(conn, run_id=a["run_id"]).get(a["step_id"])
            still = exe is not None and exe["state"] in ("interrupted", "failed") \
                and latest is not None and latest["id"] == exe["id"] and (
                    self._runbook.step(exe["step_id"]).phase != ROLLBACK
                    or self._planner.stops_here(conn, exe))
            return a["params_hash"] if still else "the step changed since the request"
        if a["step_id"] == ROLLBACK:
            return self._planner.resume_hash(conn, a)
        params = dict(a["params"])
        params["preflight"] = self._preflight.verdict(conn, a["run_id"])
        return rule.params_hash(a["run_id"], a["step_id"], params)

    def after_approval(self, conn: psycopg.Connection, a: dict, user_id: str,
                       exes: Sequence[Mapping[str, Any]] | None = None) -> list[int]:
        """What the approval of ``a`` lets happen (``exes``: its executions, as read by the
        click); the ids of what was queued or marked done."""
        if a["kind"] == "mark_done":
            exe = self._recovery.treat_as_done(
                conn, execution_id=a["params"]["execution"], requester=a["requester"],
                reason=a["reason"] or "", channel=a["channel"], approved_by=user_id)
            return [exe["id"]] if exe else []
        if a["step_id"] == ROLLBACK:
            run = repo.get_run(conn, run_id=a["run_id"], for_update=True)
            assert run is not None
            self._rollbacks.queue(conn, run=run, actor=Requester(a["requester"], a["channel"]),
                                  approval_id=a["id"],
                                  args=dict(a["params"].get("args") or {}))
            return [a["id"]]
        out = []
        if exes is None:
            exes = repo.executions_of_approval(conn, approval_id=a["id"])
        for exe in exes:
            if exe["state"] != "awaiting_approval":
                self._s.notices.step_changed(conn, exe)
            else:
                moved = executions.move(conn, execution_id=exe["id"], event="approve",
                                        now=self._deps.now())
                if moved is not None:
                    # "approved, queued" shows only if the worker has not taken the step by
                    # then: else that update would take the card's one-second update window
                    # and hold a quick step's result back by up to a second.
                    self._s.notices.step_changed(conn, moved, delay=QUEUED_SHOWS_AFTER_S)
                else:
                    self._s.notices.step_changed(conn, exe)
                out.append(exe["id"])
        return out
