"""Commands and clicks become state transitions: runs, step requests, approvals, rollback requests, retry and mark done."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg

from bot import approvals as rule
from bot.engine.core import (
    ACTIVE_STATES,
    ROLLBACK,
    Actor,
    EngineCore,
    Refused,
    _request_from_row,
    rule_gate_default,
)
from bot.slack import blocks
from bot.store import repo
from runbook.model import Step
from runbook.steps.base import REGISTRY


class Requests(EngineCore):
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

    def finish_run(self, *, actor: Actor) -> dict:
        with self.db.transaction() as conn:
            run = repo.active_run(conn, for_update=True)
            if not run:
                raise Refused("No cutover run is active.")
            busy = [s for s, v in repo.latest_executions(conn, run_id=run["id"]).items()
                    if v["state"] in ("queued", "running")]
            if busy:
                raise Refused(f"Wait for {', '.join(busy)} to finish first.")
            states = self.states(conn, run["id"])
            rolled = any(states.get(s.id) == "succeeded" for s in self.runbook.rollback)
            status = "rolled_back" if rolled else "completed"
            for a in repo.pending_approvals(conn, run_id=run["id"]):
                self._close_request(conn, a, status="cancelled", by=actor.user_id,
                                    note="run finished")
            repo.end_run(conn, run_id=run["id"], status=status, now=self.deps.now())
            self._audit(conn, actor=actor.user_id, channel=actor.channel, action="run.finish",
                        outcome=status, run_id=run["id"])
            head = repo.audit_head(conn)
        # The chain head, posted where the database cannot rewrite it, pins the audit log:
        # a later truncation or rewrite no longer verifies against this hash.
        return {**run, "status": status, "audit_head": head["last_hash"],
                "audit_rows": head["last_id"]}

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
        post_card: dict | None = None
        with self.db.transaction() as conn:
            run = self._run_for(conn, actor, auto_start=auto_start)
            latest = repo.latest_executions(conn, run_id=run["id"])
            states = {k: v["state"] for k, v in latest.items()}
            current = latest.get(step.id)
            superseded = None
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
                    superseded = old["id"]
                    current = None
            if current and current["state"] in ACTIVE_STATES:
                raise Refused(f"*{blocks.esc(step.title)}* is already {blocks.state_word(current['state'])}.")
            if current and current["state"] == "succeeded" and step.gated:
                raise Refused(f"*{blocks.esc(step.title)}* already succeeded in run #{run['id']}; "
                              "a gated step never runs twice.")
            unmet = self.runbook.unmet_requirements(step.id, states)
            if unmet and not override:
                names = ", ".join(f"`{u}` ({blocks.state_word(states.get(u, 'pending'))})"
                                  for u in unmet)
                self._audit(conn, actor=actor.user_id, channel=actor.channel,
                            action="step.request", outcome="refused_order", run_id=run["id"],
                            detail={"step": step.id, "unmet": unmet})
                raise Refused(f"*{blocks.esc(step.title)}* cannot run yet: it needs {names} first. "
                              "To override, add `--override \"reason\"` (two people must agree).")
            gated = step.gated or bool(override and unmet)
            if not gated:
                exe = repo.insert_execution(conn, run_id=run["id"], step_id=step.id,
                                            state="queued", params=args,
                                            requested_by=actor.user_id, channel=actor.channel,
                                            now=self.deps.now())
                self._audit(conn, actor=actor.user_id, channel=actor.channel,
                            action="step.queued", outcome="ok", run_id=run["id"],
                            detail={"step": step.id, "args": args, "execution": exe["id"]})
                return f"Queued *{blocks.esc(step.title)}* (run #{run['id']})."
            bound = self._bound_params(step.id, args, override if unmet else None,
                                       self._preflight_verdict(states))
            gate = step.gate or rule_gate_default()
            now = self.deps.now()
            try:
                with conn.transaction():
                    approval = repo.insert_approval(
                        conn, run_id=run["id"], step_id=step.id, action=step.title,
                        params=bound, params_hash=rule.params_hash(run["id"], step.id, bound),
                        requester=actor.user_id, required=gate.approvals,
                        groups=list(gate.groups), reason=override if unmet else None,
                        channel=actor.channel, now=now, expires_at=now + self.deps.expiry)
            except psycopg.errors.UniqueViolation:
                raise Refused(f"*{blocks.esc(step.title)}* already has a pending approval request.") from None
            exe = repo.insert_execution(conn, run_id=run["id"], step_id=step.id,
                                        state="awaiting_approval", params=args,
                                        requested_by=actor.user_id, channel=actor.channel,
                                        now=now, approval_id=approval["id"],
                                        override_reason=override if unmet else None)
            self._audit(conn, actor=actor.user_id, channel=actor.channel,
                        action="approval.requested", outcome="pending", run_id=run["id"],
                        detail={"step": step.id, "args": args, "approval": approval["id"],
                                "override": override if unmet else None})
            post_card = {"approval": approval, "exe": exe}
        if superseded:
            self.refresh_approval(superseded)
        ts = self.refresh_card(post_card["exe"]["id"])
        if ts is None:
            return (f"Approval requested for *{blocks.esc(step.title)}*, but the card could not be posted; "
                    "`/golive status` shows it.")
        return f"Approval requested for *{blocks.esc(step.title)}*: someone other than you must approve."

    # ------------------------------------------------------------------ rollback
    def request_rollback(self, *, actor: Actor, reason: str) -> str:
        """Ask for the rollback plan; from the cutover or an incident channel."""
        with self.db.transaction() as conn:
            run = repo.active_run(conn, for_update=True) or repo.latest_run(conn)
            if run is None:
                raise Refused("There is no cutover run to roll back.")
            missing = [s.kind for s in self.runbook.rollback
                       if s.kind not in REGISTRY or not REGISTRY[s.kind].available]
            if missing:
                self._audit(conn, actor=actor.user_id, channel=actor.channel,
                            action="rollback.request", outcome="not_available",
                            run_id=run["id"], detail={"missing": missing})
                raise Refused("Rollback is not available yet: step kinds "
                              f"{', '.join(f'`{m}`' for m in missing)} are not built.")
            busy = [s for s, v in repo.latest_executions(conn, run_id=run["id"]).items()
                    if v["state"] == "running"]
            first = self.runbook.rollback[0]
            if not self.deps.rollback_gated:
                self._queue_rollback(conn, run=run, actor=actor, approval_id=None, reason=reason)
                return "Rollback queued: " + " → ".join(s.title for s in self.runbook.rollback)
            gate = self.runbook.rollback_gate or rule_gate_default()
            bound = self._bound_params(ROLLBACK, {"reason": reason}, None, "")
            now = self.deps.now()
            try:
                with conn.transaction():
                    approval = repo.insert_approval(
                        conn, run_id=run["id"], step_id=ROLLBACK, action="Rollback",
                        params=bound, params_hash=rule.params_hash(run["id"], ROLLBACK, bound),
                        requester=actor.user_id, required=gate.approvals,
                        groups=list(gate.groups), reason=reason, channel=actor.channel,
                        now=now, expires_at=now + self.deps.expiry)
            except psycopg.errors.UniqueViolation:
                raise Refused("A rollback request is already pending.") from None
            self._audit(conn, actor=actor.user_id, channel=actor.channel,
                        action="approval.requested", outcome="pending", run_id=run["id"],
                        detail={"step": ROLLBACK, "reason": reason, "approval": approval["id"],
                                "running_now": busy, "first": first.id})
        self.refresh_rollback_card(approval["id"])
        return "Rollback requested: someone other than you must approve."

    def _queue_rollback(self, conn: psycopg.Connection, *, run: dict, actor: Actor,
                        approval_id: int | None, reason: str) -> None:
        now = self.deps.now()
        for exe in repo.latest_executions(conn, run_id=run["id"]).values():
            if exe["state"] in ("queued", "awaiting_approval") and exe["step_id"] not in {
                    s.id for s in self.runbook.rollback}:
                repo.transition(conn, execution_id=exe["id"], from_states=(exe["state"],),
                                to="cancelled", now=now, error="cancelled by rollback")
                if exe["approval_id"]:
                    a = repo.get_approval(conn, approval_id=exe["approval_id"], for_update=True)
                    if a and a["status"] == "pending":
                        self._close_request(conn, a, status="cancelled", by=actor.user_id,
                                            note="rollback started")
        for step in self.runbook.rollback:
            repo.insert_execution(conn, run_id=run["id"], step_id=step.id, state="queued",
                                  params={"reason": reason}, requested_by=actor.user_id,
                                  channel=run["channel"], now=now, approval_id=approval_id)
        self._audit(conn, actor=actor.user_id, channel=actor.channel, action="rollback.queued",
                    outcome="ok", run_id=run["id"], detail={"reason": reason})
        self._wake.set()

    # ------------------------------------------------------------------ approvals
    def click(self, *, approval_id: int, kind: str, user_id: str, channel: str,
              reason: str = "") -> rule.Decision:
        """One Approve/Reject/Cancel click, decided under a row lock (exactly once)."""
        actor = self.deps.directory.actor(user_id)  # Slack calls stay outside the transaction
        policy = self._policy()
        queued_exe: list[int] = []
        with self.db.transaction() as conn:
            a = repo.get_approval(conn, approval_id=approval_id, for_update=True)
            if a is None:
                raise Refused("That approval request does not exist.")
            votes = repo.approval_votes(conn, approval_id=approval_id)
            request = _request_from_row(a, votes)
            current_hash = self._current_hash(conn, a)
            decision = rule.decide(request, rule.Click(kind=kind, actor=actor,
                                                        current_params_hash=current_hash,
                                                        reason=reason),
                                   self.deps.now(), policy)
            self._audit(conn, actor=user_id, channel=channel, action=f"approval.{kind}",
                        outcome=str(decision.refusal or decision.outcome), run_id=a["run_id"],
                        detail={"approval": approval_id, "step": a["step_id"],
                                "reason": reason or None})
            if decision.outcome in (rule.Outcome.APPROVED, rule.Outcome.PARTIAL):
                repo.insert_vote(conn, approval_id=approval_id, user_id=user_id, vote="approve",
                                 now=self.deps.now())
            if decision.outcome == rule.Outcome.REJECTED:
                repo.insert_vote(conn, approval_id=approval_id, user_id=user_id, vote="reject",
                                 now=self.deps.now())
            if decision.new_status != "pending" and a["status"] == "pending":
                if not self._close_request(conn, a, status=decision.new_status, by=user_id,
                                           note=reason or decision.message):
                    # Lost a race the row lock should have prevented: never claim the win.
                    raise Refused("This request was decided a moment ago; see the card.")
                if decision.new_status == "approved":
                    queued_exe = self._after_approval(conn, a, user_id)
        self.refresh_approval(approval_id)
        if queued_exe:
            self._wake.set()
        return decision

    def _current_hash(self, conn: psycopg.Connection, a: dict) -> str:
        if a["step_id"] == ROLLBACK:
            return a["params_hash"]
        params = dict(a["params"])
        params["preflight"] = self._preflight_verdict(self.states(conn, a["run_id"]))
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
                    repo.transition(conn, execution_id=exe["id"],
                                    from_states=("awaiting_approval",), to="cancelled",
                                    now=self.deps.now(), error=f"approval {status}")
        return True

    def _after_approval(self, conn: psycopg.Connection, a: dict, user_id: str) -> list[int]:
        if a["step_id"] == ROLLBACK:
            run = repo.get_run(conn, run_id=a["run_id"], for_update=True)
            assert run is not None
            self._queue_rollback(conn, run=run, actor=Actor(a["requester"], a["channel"]),
                                 approval_id=a["id"], reason=a["reason"] or "")
            return [a["id"]]
        out = []
        for exe in repo.executions_of_approval(conn, approval_id=a["id"]):
            if exe["state"] == "awaiting_approval":
                repo.transition(conn, execution_id=exe["id"], from_states=("awaiting_approval",),
                                to="queued", now=self.deps.now())
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
        for a in rows:
            self.refresh_approval(a["id"])
        return len(rows)

    # ------------------------------------------------------------------ interrupted steps
    def retry(self, *, execution_id: int, user_id: str, channel: str) -> str:
        with self.db.transaction() as conn:
            exe = repo.get_execution(conn, execution_id=execution_id, for_update=True)
            if exe is None or exe["state"] not in ("interrupted", "failed"):
                raise Refused("Only an interrupted or failed step can be retried.")
            latest = repo.latest_executions(conn, run_id=exe["run_id"]).get(exe["step_id"])
            if latest and latest["id"] != exe["id"]:
                raise Refused("This step has been requested again since; see `/golive status`.")
        step = self.runbook.step(exe["step_id"])
        if step.phase == ROLLBACK:
            raise Refused("Retry the rollback with `/golive rollback`.")
        line = self._request_step(actor=Actor(user_id, channel), step=step,
                                  args=dict(exe["params"]), override=exe["override_reason"],
                                  auto_start=False)
        self._wake.set()
        return line

    def mark_done(self, *, execution_id: int, user_id: str, channel: str, reason: str) -> str:
        if not reason.strip():
            raise Refused("Say why the step can be treated as done.")
        with self.db.transaction() as conn:
            exe = repo.transition(conn, execution_id=execution_id, from_states=("interrupted",),
                                  to="succeeded", now=self.deps.now(),
                                  summary=f"marked done by <@{user_id}>: {reason.strip()}")
            if exe is None:
                raise Refused("Only an interrupted step can be marked done.")
            self._audit(conn, actor=user_id, channel=channel, action="step.mark_done",
                        outcome="succeeded", run_id=exe["run_id"],
                        detail={"step": exe["step_id"], "reason": reason})
        self.refresh_card(execution_id)
        self._wake.set()
        return f"Marked *{exe['step_id']}* done."

