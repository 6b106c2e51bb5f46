"""Commands and clicks become state transitions: runs, step requests, approvals, retry and mark
done (rollback requests: ``bot.engine.rollback_requests``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg

from bot.engine import executions
from bot.engine.core import (
    ACTIVE_STATES,
    ROLLBACK,
    Actor,
    Refused,
    _request_from_row,
    rule_gate_default,
)
from bot.engine.rollback_requests import RollbackRequests
from bot.slack import blocks
from bot.store import repo
from runbook.model import Step
from runbook.rules import approvals as rule
from runbook.steps.base import REGISTRY

QUEUED_SHOWS_AFTER_S = 0.5  # an approved step's "queued" card, if the worker is slower


class Requests(RollbackRequests):
    """See the module docstring."""

    # ------------------------------------------------------------------ runs
    def start_run(self, *, actor: Actor, rc_tag: str | None, rc_sha: str | None) -> dict:
        """Open a cutover run (one at a time)."""
        with self.db.transaction() as conn:
            existing = repo.active_run(conn)
            if existing:
                raise Refused(f"Run #{existing['id']} is already active (started by "
                              f"<@{existing['started_by']}>). Finish it with `/golive finish`.")
            try:
                run = repo.insert_run(conn, channel=actor.channel, rc_tag=rc_tag, rc_sha=rc_sha,
                                      started_by=actor.user_id, now=self.deps.now())
            except psycopg.errors.UniqueViolation:
                raise Refused("Another run was started at the same moment.") from None
            self._audit(conn, actor=actor.user_id, channel=actor.channel, action="run.start",
                        outcome="ok", run_id=run["id"],
                        detail={"rc_tag": rc_tag, "rc_sha": rc_sha})
        return run

    def finish_run(self, *, actor: Actor, abort: str | None = None) -> dict:
        """Close the active run: refused while work is open, unless ``abort`` (a reason) ends
        it as ``aborted``, cancelling queued steps and voiding pending approvals."""
        with self.db.transaction() as conn:
            run = repo.active_run(conn, for_update=True)
            if not run:
                raise Refused("No cutover run is active.")
            latest = repo.latest_executions(conn, run_id=run["id"])
            running = [s for s, v in latest.items() if v["state"] == "running"]
            queued = [v for v in latest.values() if v["state"] == "queued"]
            pending = repo.pending_approvals(conn, run_id=run["id"])
            if running:
                raise Refused(f"`{'`, `'.join(running)}` is running; wait for it to finish "
                              "(a running step is never abandoned mid-way).")
            if not abort and (queued or pending):
                raise Refused(f"Run #{run['id']} still has open work: "
                              f"{self._open_work(queued, pending)}. Wait for it or cancel it, "
                              "or end the run with `/golive finish --abort \"reason\"`.")
            now = self.deps.now()
            for exe in queued:
                executions.move(conn, execution_id=exe["id"], event="cancel", only=("queued",),
                                now=now, error=f"run aborted: {abort}")
                self.notices.step_changed(conn, exe)
            for a in pending:
                self._close_request(conn, a, status="void", by=actor.user_id,
                                    note=f"run aborted by <@{actor.user_id}>: {abort}")
            view = blocks.RunView(run=run, runbook=self.runbook,
                                  executions=repo.executions(conn, run_id=run["id"]),
                                  approvals=[], votes={},
                                  available={k: v.available for k, v in REGISTRY.items()})
            status = "aborted" if abort else view.outcome()
            not_run = [s.id for s in view.not_run()]
            repo.end_run(conn, run_id=run["id"], status=status, now=now)
            self._audit(conn, actor=actor.user_id, channel=actor.channel, action="run.finish",
                        outcome=status, run_id=run["id"],
                        detail={"reason": abort, "not_run": not_run,
                                "voided": [a["id"] for a in pending],
                                "cancelled": [e["step_id"] for e in queued]})
            self.audit.flush(conn)  # the head read next includes this run's last rows
            head = repo.audit_head(conn)
        # The chain head, posted where the database cannot rewrite it, pins the audit log:
        # a later truncation or rewrite no longer verifies against this hash.
        return {**run, "status": status, "audit_head": head["last_hash"],
                "audit_rows": head["last_id"], "not_run": not_run,
                "voided": [a["action"] for a in pending], "left": view.stack_left()}

    @staticmethod
    def _open_work(queued: list[dict], pending: list[dict]) -> str:
        items = [f"`{e['step_id']}` queued" for e in queued]
        items += [f"{blocks.esc(a['action'])} awaiting approval (requested by "
                  f"<@{a['requester']}>)" for a in pending]
        return "; ".join(items)

    def _run_for(self, conn: psycopg.Connection, actor: Actor, *, auto_start: bool) -> dict:
        run = repo.active_run(conn, for_update=True)
        if run:
            return run
        if not auto_start:
            raise Refused("No cutover run is active. Start one with `/golive start &lt;rc-tag&gt;`.")
        run = repo.insert_run(conn, channel=actor.channel, rc_tag=None, rc_sha=None,
                              started_by=actor.user_id, now=self.deps.now())
        self._audit(conn, actor=actor.user_id, channel=actor.channel, action="run.start",
                    outcome="ok", run_id=run["id"], detail={"auto": True})
        return run

    # ------------------------------------------------------------------ requests
    def request(self, *, actor: Actor, command: str, args: Mapping[str, Any] | None = None,
                override: str | None = None) -> list[str]:
        """Ask for the runbook step(s) behind ``command``; returns one line per step."""
        steps = self.runbook.steps_for_command(command)
        if not steps:
            raise Refused(f"No runbook step runs on `/golive {command}`.")
        lines: list[str] = []
        for step in steps:
            lines.append(self._request_step(actor=actor, step=step, args=dict(args or {}),
                                            override=override,
                                            auto_start=command == "preflight"))
        self._wake.set()
        return lines

    def _request_step(self, *, actor: Actor, step: Step, args: dict[str, Any],
                      override: str | None, auto_start: bool) -> str:
        kind = REGISTRY.get(step.kind)
        if kind is None or not kind.available:
            with self.db.transaction() as conn:
                run = repo.active_run(conn)
                self._audit(conn, actor=actor.user_id, channel=actor.channel,
                            action="step.request", outcome="not_available",
                            run_id=run["id"] if run else None, detail={"step": step.id})
            return (f"*{blocks.esc(step.title)}* is not available yet: the `{step.kind}` step kind is "
                    "listed in the runbook but not built. It was not run.")
        with self.db.transaction() as conn:
            run = self._run_for(conn, actor, auto_start=auto_start)
            latest = repo.latest_executions(conn, run_id=run["id"])
            states = {k: v["state"] for k, v in latest.items()}
            current = latest.get(step.id)
            if current and current["state"] == "awaiting_approval" and \
                    dict(current["params"]) != args and current["approval_id"]:
                # New arguments (e.g. another tag): the pending approval is void, not reused.
                old = repo.get_approval(conn, approval_id=current["approval_id"],
                                        for_update=True)
                if old and old["status"] == "pending":
                    self._close_request(conn, old, status="void", by=actor.user_id,
                                        note="superseded by a new request")
                    self._audit(conn, actor=actor.user_id, channel=actor.channel,
                                action="approval.void", outcome="void", run_id=run["id"],
                                detail={"step": step.id, "approval": old["id"],
                                        "new_args": args})
                    current = None
            if current and current["state"] in ACTIVE_STATES:
                raise Refused(f"*{blocks.esc(step.title)}* is already {blocks.state_word(current['state'])}.")
            if current and current["state"] == "succeeded" and step.gated and not override:
                cmd = step.command or step.id
                raise Refused(f"*{blocks.esc(step.title)}* already ran and succeeded in run "
                              f"#{run['id']} (attempt {current['attempt']}), so it was not "
                              "requested again. A re-run needs a reason and a second person: "
                              f"`/golive {blocks.esc(cmd)} --override \"why\"`.")
            # The run's preflight, read once for the gate and for what an approval binds.
            pre = self._preflight_state(conn, run, latest) if self._preflight_steps() else None
            gate = self._preflight_refusal(conn, run, step, pre)
            if gate and not override:
                self._audit(conn, actor=actor.user_id, channel=actor.channel,
                            action="step.request", outcome="refused_preflight",
                            run_id=run["id"], detail={"step": step.id, "why": gate})
                raise Refused(f"*{blocks.esc(step.title)}* cannot start: {gate} To override, "
                              "add `--override \"reason\"` (two people must agree).")
            unmet = self.runbook.unmet_requirements(step.id, states)
            if unmet and not override:
                names = ", ".join(f"`{u}` ({blocks.state_word(states.get(u, 'pending'))})"
                                  for u in unmet)
                self._audit(conn, actor=actor.user_id, channel=actor.channel,
                            action="step.request", outcome="refused_order", run_id=run["id"],
                            detail={"step": step.id, "unmet": unmet})
                raise Refused(f"*{blocks.esc(step.title)}* cannot run yet: it needs {names} first. "
                              "To override, add `--override \"reason\"` (two people must agree).")
            # Every override is a two-person decision, whatever the step.
            gated = step.gated or bool(override)
            if not gated:
                exe = executions.create(conn, event="request", run_id=run["id"],
                                            step_id=step.id, params=args,
                                            requested_by=actor.user_id, channel=actor.channel,
                                            now=self.deps.now())
                self._audit(conn, actor=actor.user_id, channel=actor.channel,
                            action="step.queued", outcome="ok", run_id=run["id"],
                            detail={"step": step.id, "args": args, "execution": exe["id"]})
                return f"Queued *{blocks.esc(step.title)}* (run #{run['id']})."
            bound = self._bound_params(step.id, args, override,
                                       self._preflight_verdict(conn, run["id"], pre))
            gate = step.gate or rule_gate_default()
            now = self.deps.now()
            try:
                with conn.transaction():
                    approval = repo.insert_approval(
                        conn, run_id=run["id"], step_id=step.id, action=step.title,
                        params=bound, params_hash=rule.params_hash(run["id"], step.id, bound),
                        requester=actor.user_id, required=gate.approvals,
                        groups=list(gate.groups), reason=override,
                        channel=actor.channel, now=now, expires_at=now + self.deps.expiry)
            except psycopg.errors.UniqueViolation:
                raise Refused(f"*{blocks.esc(step.title)}* already has a pending approval request.") from None
            exe = executions.create(conn, event="request_gated", run_id=run["id"],
                                        step_id=step.id, params=args,
                                        requested_by=actor.user_id, channel=actor.channel,
                                        now=now, approval_id=approval["id"],
                                        override_reason=override)
            self._audit(conn, actor=actor.user_id, channel=actor.channel,
                        action="approval.requested", outcome="pending", run_id=run["id"],
                        detail={"step": step.id, "args": args, "approval": approval["id"],
                                "override": override})
            self.notices.step_changed(conn, exe)  # its card is the approval card
        return f"Approval requested for *{blocks.esc(step.title)}*: someone other than you must approve."

    # ------------------------------------------------------------------ approvals
    def approval(self, approval_id: int) -> dict | None:
        """One approval request as stored (what a card's click refers to)."""
        with self.db.transaction() as conn:
            return repo.get_approval(conn, approval_id=approval_id)

    def audit_refusal(self, *, actor: Actor, action: str, refusal: str, reason: str) -> None:
        """Record a refused button or modal with its reason (commands: ``audit_command``)."""
        with self.db.transaction() as conn:
            run = repo.active_run(conn)
            self._audit(conn, actor=actor.user_id, channel=actor.channel,
                        action=f"refused.{action}", outcome=refusal,
                        run_id=run["id"] if run else None, detail={"reason": reason})

    def click(self, *, approval_id: int, kind: str, user_id: str, channel: str,
              reason: str = "", message_ts: str | None = None) -> rule.Decision:
        """One Approve/Reject/Cancel click, decided under a row lock (exactly once).

        ``message_ts``/``channel`` are where the click came from: a click counts only on the
        approval's own card, so a button whose value names another approval decides nothing.
        """
        actor = self.deps.directory.actor(user_id)  # Slack calls stay outside the transaction
        policy = self._policy()
        queued_exe: list[int] = []
        with self.db.transaction() as conn:
            a = repo.get_approval(conn, approval_id=approval_id, for_update=True)
            if a is None:
                raise Refused("That approval request does not exist.")
            card = self._card_of(conn, a)
            if card is None or (card, a["channel"]) != (message_ts, channel):
                raise Refused("That button does not belong to this request's card, so nothing "
                              "was decided. Use the buttons on the request's own card.")
            votes = repo.approval_votes(conn, approval_id=approval_id)
            request = _request_from_row(a, votes)
            current_hash = self._current_hash(conn, a)
            decision = rule.decide(request, rule.ApprovalClick(kind=kind, actor=actor,
                                                        current_params_hash=current_hash,
                                                        reason=reason),
                                   self.deps.now(), policy)
            self._audit(conn, actor=user_id, channel=channel, action=f"approval.{kind}",
                        outcome=str(decision.refusal or decision.outcome), run_id=a["run_id"],
                        detail={"approval": approval_id, "step": a["step_id"],
                                "reason": reason or None})
            if decision.outcome in (rule.DecisionOutcome.APPROVED, rule.DecisionOutcome.PARTIAL):
                repo.insert_vote(conn, approval_id=approval_id, user_id=user_id, vote="approve",
                                 now=self.deps.now())
                self._approval_changed(conn, a)  # the votes so far show on the card
            if decision.outcome == rule.DecisionOutcome.REJECTED:
                repo.insert_vote(conn, approval_id=approval_id, user_id=user_id, vote="reject",
                                 now=self.deps.now())
            if decision.new_status != "pending" and a["status"] == "pending":
                if not self._close_request(conn, a, status=decision.new_status, by=user_id,
                                           note=reason or decision.message):
                    # Lost a race the row lock should have prevented: never claim the win.
                    raise Refused("This request was decided a moment ago; see the card.")
                if decision.new_status == "approved":
                    queued_exe = self._after_approval(conn, a, user_id)
        if queued_exe:
            self._wake.set()
        return decision

    def _current_hash(self, conn: psycopg.Connection, a: dict) -> str:
        if a["kind"] == "mark_done":
            # Still the same interrupted attempt, and still the newest: else the request is void.
            exe = repo.get_execution(conn, execution_id=a["params"]["execution"])
            latest = repo.latest_executions(conn, run_id=a["run_id"]).get(a["step_id"])
            still = exe is not None and exe["state"] in ("interrupted", "failed") \
                and latest is not None and latest["id"] == exe["id"] and (
                    self.runbook.step(exe["step_id"]).phase != ROLLBACK
                    or self._stops_here(conn, exe))
            return a["params_hash"] if still else "the step changed since the request"
        if a["step_id"] == ROLLBACK:
            return self._resume_hash(conn, a)
        params = dict(a["params"])
        params["preflight"] = self._preflight_verdict(conn, a["run_id"])
        return rule.params_hash(a["run_id"], a["step_id"], params)

    def _close_request(self, conn: psycopg.Connection, a: dict, *, status: str, by: str | None,
                       note: str | None) -> bool:
        """Move a pending request to ``status``; False if it was no longer pending."""
        if repo.decide_approval(conn, approval_id=a["id"], status=status, now=self.deps.now(),
                                decided_by=by, note=note) is None:
            return False
        if status != "approved":
            for exe in repo.executions_of_approval(conn, approval_id=a["id"]):
                if exe["state"] == "awaiting_approval":
                    executions.move(conn, execution_id=exe["id"], event="cancel",
                                    only=("awaiting_approval",),
                                    now=self.deps.now(), error=f"approval {status}")
        self._approval_changed(conn, a)  # the card loses its buttons in the same commit
        return True

    def _after_approval(self, conn: psycopg.Connection, a: dict, user_id: str) -> list[int]:
        if a["kind"] == "mark_done":
            exe = self._treat_as_done(conn, execution_id=a["params"]["execution"],
                                      requester=a["requester"], reason=a["reason"] or "",
                                      channel=a["channel"], approved_by=user_id)
            return [exe["id"]] if exe else []
        if a["step_id"] == ROLLBACK:
            run = repo.get_run(conn, run_id=a["run_id"], for_update=True)
            assert run is not None
            self._queue_rollback(conn, run=run, actor=Actor(a["requester"], a["channel"]),
                                 approval_id=a["id"], args=dict(a["params"].get("args") or {}))
            return [a["id"]]
        out = []
        for exe in repo.executions_of_approval(conn, approval_id=a["id"]):
            if exe["state"] == "awaiting_approval":
                moved = executions.move(conn, execution_id=exe["id"], event="approve",
                                        now=self.deps.now())
                if moved is not None:
                    # "approved, queued" shows only if the worker has not taken the step by
                    # then: else that update would take the card's one-second update window
                    # and hold a quick step's result back by up to a second.
                    self.notices.step_changed(conn, moved, delay=QUEUED_SHOWS_AFTER_S)
                out.append(exe["id"])
        return out

    def expire_approvals(self) -> int:
        """Close requests past their expiry and say so on their cards."""
        with self.db.transaction() as conn:
            rows = repo.expired_pending(conn, now=self.deps.now())
            for a in rows:
                self._close_request(conn, a, status="expired", by=None, note="expired")
                self._audit(conn, actor="golive", channel=a["channel"], action="approval.expire",
                            outcome="expired", run_id=a["run_id"],
                            detail={"approval": a["id"], "step": a["step_id"]})
        return len(rows)

    # ------------------------------------------------------------------ interrupted steps
    def _treat_as_done(self, conn: psycopg.Connection, *, execution_id: int, requester: str,
                       reason: str, channel: str, approved_by: str | None) -> dict | None:
        # A failed step only when it is a rollback's (mark_done checks before asking).
        exe = executions.move(conn, execution_id=execution_id, event="mark_done",
                              now=self.deps.now(),
                              summary=blocks.marked_done_summary(requester, reason))
        if exe is None:
            raise Refused("Only an interrupted step (or a failed rollback step) can be marked "
                          "done.")
        self.notices.step_changed(conn, exe)
        self._audit(conn, actor=approved_by or requester, channel=channel,
                    action="step.mark_done", outcome="succeeded", run_id=exe["run_id"],
                    detail={"step": exe["step_id"], "reason": reason, "requested_by": requester,
                            "approved_by": approved_by})
        if self.runbook.step(exe["step_id"]).phase == ROLLBACK:
            self._continue_rollback(conn, exe, Actor(requester, channel))
        return exe
