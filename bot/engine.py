"""The cutover engine: a persisted state machine per run, and the worker that runs steps.

Every side effect sits behind a committed state transition:
  request -> (awaiting_approval -> approved) -> queued -> running -> succeeded | failed
A step is marked ``running`` in the same transaction that takes a session advisory lock for it;
the lock lives as long as the worker's connection, so a reaper that can take the lock knows the
worker died and marks the step ``interrupted`` (never re-run silently).
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from bot import approvals as rule
from bot.slack import blocks
from bot.store import repo
from bot.store.db import Database
from runbook.model import Gate, Runbook, Step
from runbook.steps.base import REGISTRY, StepContext, StepFailed, StepNotAvailable

log = logging.getLogger(__name__)

ACTIVE_STATES = ("awaiting_approval", "queued", "running")
ROLLBACK = "rollback"


class Refused(Exception):
    """A request the engine will not carry out; ``message`` is for the user."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Actor:
    user_id: str
    channel: str


@dataclass
class Deps:
    """What the engine talks to besides the database (built by the composition root)."""

    poster: Any  # bot.slack.poster.Poster
    directory: Any  # bot.slack.directory.Directory
    target: Any  # runbook.target.TargetConfig
    secrets: Mapping[str, str]
    mask: Callable[[Any], Any]
    approvers: frozenset[str]
    expiry: timedelta
    rollback_gated: bool = True
    step_grace: float = 30.0
    """Seconds past a step's own timeout before the engine stops waiting for it."""
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")


class Engine:
    def __init__(self, *, db: Database, runbook: Runbook, deps: Deps):
        self.db = db
        self.runbook = runbook
        self.deps = deps
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ small helpers
    def _audit(self, conn: psycopg.Connection, *, actor: str, action: str, outcome: str,
               run_id: int | None = None, channel: str | None = None,
               detail: Mapping[str, Any] | None = None) -> None:
        repo.append_audit(conn, now=self.deps.now(), actor=actor, action=action, outcome=outcome,
                          run_id=run_id, channel=channel, detail=detail, mask=self.deps.mask)

    def audit_command(self, *, actor: Actor, text: str, outcome: str,
                      detail: Mapping[str, Any] | None = None) -> None:
        """Record a received command and how it ended (every command is audited)."""
        with self.db.transaction() as conn:
            run = repo.active_run(conn)
            self._audit(conn, actor=actor.user_id, channel=actor.channel, action="command",
                        outcome=outcome, run_id=run["id"] if run else None,
                        detail={"text": text[:500], **(detail or {})})

    def states(self, conn: psycopg.Connection, run_id: int) -> dict[str, str]:
        return {k: v["state"] for k, v in repo.latest_executions(conn, run_id=run_id).items()}

    def _preflight_verdict(self, states: Mapping[str, str]) -> str:
        pre = [s.id for s in self.runbook.phases[0].steps] if self.runbook.phases else []
        return ",".join(f"{sid}={states.get(sid, 'pending')}" for sid in pre)

    @staticmethod
    def _bound_params(step_id: str, args: Mapping[str, Any], override: str | None,
                      verdict: str) -> dict[str, Any]:
        return {"step": step_id, "args": dict(args), "override": override, "preflight": verdict}

    def _policy(self) -> rule.Policy:
        return rule.Policy(approvers=self.deps.approvers,
                           groups=self.deps.directory.group_members(), expiry=self.deps.expiry)

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

    def reap_interrupted(self) -> int:
        """Running steps whose worker is gone become interrupted; the channel is told."""
        found: list[int] = []
        with self.db.connection() as conn:
            conn.autocommit = True
            try:
                for exe in repo.running_executions(conn):
                    if not repo.try_lock_execution(conn, execution_id=exe["id"]):
                        continue  # its worker is alive and holds the lock
                    try:
                        with conn.transaction():
                            moved = repo.transition(
                                conn, execution_id=exe["id"], from_states=("running",),
                                to="interrupted", now=self.deps.now(),
                                error="outcome unknown: the bot stopped while this step ran")
                            if moved:
                                self._audit(conn, actor="golive", channel=exe["channel"],
                                            action="step.interrupted", outcome="interrupted",
                                            run_id=exe["run_id"],
                                            detail={"step": exe["step_id"],
                                                    "worker": exe["claimed_by"]})
                                found.append(exe["id"])
                    finally:
                        repo.unlock_execution(conn, execution_id=exe["id"])
            finally:
                conn.autocommit = False
        for exe_id in found:
            self.refresh_card(exe_id)
            self.announce_interrupted(exe_id)
        return len(found)

    # ------------------------------------------------------------------ the worker
    def start_worker(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._worker_loop, name="golive-worker",
                                            daemon=True)
            self._thread.start()

    def stop_worker(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout)

    def wake(self) -> None:
        self._wake.set()

    def _worker_loop(self) -> None:
        last_maintenance = float("-inf")
        while not self._stop.is_set():
            try:
                if self.deps.clock() - last_maintenance >= 2.0:
                    last_maintenance = self.deps.clock()
                    self.reap_interrupted()
                    self.expire_approvals()
                while not self._stop.is_set() and self.run_next():
                    pass
            except Exception as e:  # the worker must outlive a database outage  # noqa: BLE001 - error boundary
                log.warning("worker: %s", str(e).splitlines()[0] if str(e) else type(e).__name__)
            self._wake.wait(timeout=1.0)
            self._wake.clear()

    def run_next(self) -> bool:
        """Claim one runnable queued step and run it to its end; False when none was runnable."""
        with self.db.connection() as probe:
            if not repo.has_steps_in(probe, ("queued",)):
                return False
        # The step's own connection: its session holds the advisory lock while the step runs.
        conn = psycopg.connect(self.db.url, row_factory=dict_row, connect_timeout=5)
        try:
            cancelled: list[int] = []
            claimed = self._claim(conn, cancelled)
            for exe_id in cancelled:  # their cards must not keep saying "queued"
                self.refresh_card(exe_id)
            if claimed is None:
                return False
            self._execute(conn, *claimed)
            return True
        finally:
            conn.close()  # also releases the advisory lock if anything above failed

    def _claim(self, conn: psycopg.Connection, cancelled: list[int]
               ) -> tuple[dict, dict, Step] | None:
        """Claim one runnable step; queued steps that can never run are cancelled on the way
        (their ids land in ``cancelled``)."""
        with conn.transaction():
            for exe in repo.queued_candidates(conn):
                run = repo.get_run(conn, run_id=exe["run_id"])
                if run is None:
                    continue
                step = self.runbook.step(exe["step_id"])
                states = self.states(conn, exe["run_id"])
                unmet = self.runbook.unmet_requirements(step.id, states)
                if unmet and not exe["override_reason"]:
                    if any(states.get(u) in ("failed", "interrupted", "cancelled") for u in unmet):
                        repo.transition(conn, execution_id=exe["id"], from_states=("queued",),
                                        to="cancelled", now=self.deps.now(),
                                        error=f"cancelled: {', '.join(unmet)} did not succeed")
                        cancelled.append(exe["id"])
                    continue
                if exe["approval_id"] and step.phase != ROLLBACK:
                    a = repo.get_approval(conn, approval_id=exe["approval_id"])
                    if a is None or a["status"] != "approved" or \
                            self._current_hash(conn, a) != a["params_hash"]:
                        repo.transition(conn, execution_id=exe["id"], from_states=("queued",),
                                        to="cancelled", now=self.deps.now(),
                                        error="approval void: the parameters or preflight "
                                              "changed after approval")
                        self._audit(conn, actor="golive", channel=exe["channel"],
                                    action="approval.void", outcome="void", run_id=exe["run_id"],
                                    detail={"step": step.id, "approval": exe["approval_id"]})
                        cancelled.append(exe["id"])
                        continue
                try:
                    with conn.transaction():
                        conn.execute("SELECT pg_advisory_lock(%s, %s)",
                                     (repo.LOCK_NS, exe["id"]))
                        moved = repo.transition(conn, execution_id=exe["id"],
                                                from_states=("queued",), to="running",
                                                now=self.deps.now(),
                                                claimed_by=self.deps.worker_id)
                except psycopg.errors.UniqueViolation:
                    conn.execute("SELECT pg_advisory_unlock(%s, %s)", (repo.LOCK_NS, exe["id"]))
                    continue  # another step of this run is running
                if moved is None:
                    continue
                self._audit(conn, actor="golive", channel=exe["channel"], action="step.started",
                            outcome="running", run_id=exe["run_id"],
                            detail={"step": step.id, "attempt": exe["attempt"],
                                    "worker": self.deps.worker_id})
                return moved, run, step
        return None

    def _execute(self, conn: psycopg.Connection, exe: dict, run: dict, step: Step) -> None:
        lines: list[str] = []
        started = self.deps.clock()
        # "running" shows only if the step is still running a second from now: a quick step
        # goes straight to its result, and the card's final update is never held back.
        card_ts = self.refresh_card(exe["id"], delay=1.0)
        log_ts: list[str] = []  # the live progress log: one thread reply, updated in place

        def progress(text: str) -> None:
            lines.append(str(self.deps.mask(text))[:500])
            if not card_ts:
                return
            body_text, body = blocks.progress_log(step, lines)
            if not log_ts:
                ts = self.deps.poster.post(exe["channel"], text=body_text, blocks=body,
                                           thread_ts=card_ts)
                if ts:
                    log_ts.append(ts)
                return
            self.deps.poster.update(exe["channel"], log_ts[0], text=body_text, blocks=body)

        params = {**dict(step.params), **dict(exe["params"])}
        ctx = StepContext(run_id=run["id"], step_id=step.id, params=params,
                          facts=dict(run["facts"]), target=self.deps.target, progress=progress,
                          deadline=self.deps.clock() + step.timeout_s, clock=self.deps.clock,
                          sleep=self.deps.sleep, secrets=self.deps.secrets)
        outcome, summary, detail, error, facts = "succeeded", "", "", None, {}
        pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"step-{step.id}")
        future = pool.submit(REGISTRY[step.kind].run, ctx)
        try:
            result = future.result(timeout=step.timeout_s + self.deps.step_grace)
            summary, detail, facts = result.summary, result.detail, dict(result.facts)
        except concurrent.futures.TimeoutError:
            outcome, error = "interrupted", (f"timed out after {step.timeout_s}s; outcome "
                                             "unknown, the step may still be running")
        except StepNotAvailable as e:
            outcome, error = "failed", e.message
        except StepFailed as e:
            outcome, error, facts = "failed", e.message, dict(e.facts)
        except Exception as e:  # a bug in a step: record it, never crash the worker
            log.exception("step %s crashed", step.id)
            outcome, error = "failed", f"unexpected error: {type(e).__name__}: {e}"
        finally:
            pool.shutdown(wait=False)
        mask = self.deps.mask
        duration = self.deps.clock() - started
        with conn.transaction():
            repo.transition(conn, execution_id=exe["id"], from_states=("running",), to=outcome,
                            now=self.deps.now(), summary=mask(summary) or None,
                            detail=mask(detail) or None, error=mask(error) if error else None,
                            progress=mask("\n".join(lines[-50:])))
            repo.merge_run_facts(conn, run_id=run["id"], facts=mask(facts))
            self._audit(conn, actor="golive", channel=exe["channel"], action="step.finished",
                        outcome=outcome, run_id=run["id"],
                        detail={"step": step.id, "attempt": exe["attempt"],
                                "seconds": round(duration, 3), "summary": summary,
                                "error": error})
            if outcome != "succeeded":
                for other in repo.latest_executions(conn, run_id=run["id"]).values():
                    if other["state"] == "queued" and step.id in self.runbook.step(
                            other["step_id"]).requires and not other["override_reason"]:
                        repo.transition(conn, execution_id=other["id"], from_states=("queued",),
                                        to="cancelled", now=self.deps.now(),
                                        error=f"cancelled: {step.id} {outcome}")
        conn.execute("SELECT pg_advisory_unlock(%s, %s)", (repo.LOCK_NS, exe["id"]))
        conn.commit()
        self.refresh_card(exe["id"], progress=lines)
        if detail and len(detail) > 2800:
            self.deps.poster.upload(exe["channel"], filename=f"{step.id}-output.txt",
                                    content=mask(detail), title=f"{step.title}: output",
                                    thread_ts=exe["message_ts"])
        if outcome == "interrupted":
            self.announce_interrupted(exe["id"])
        if outcome == "succeeded":
            view = self.view(run_id=run["id"])
            # The summary closes the cutover (the same "done" that status shows) or a rollback.
            rollback_done = step.phase == ROLLBACK and step == self.runbook.rollback[-1]
            if view and (rollback_done or (step.phase != ROLLBACK and view.cutover_done()
                                           and not view.run.get("summary_ts"))):
                self.post_summary(view)

    # ------------------------------------------------------------------ rendering
    def view(self, *, run_id: int | None = None) -> blocks.RunView | None:
        """Everything status and the summary show, read in one transaction."""
        with self.db.transaction() as conn:
            run = (repo.get_run(conn, run_id=run_id) if run_id else
                   repo.active_run(conn) or repo.latest_run(conn))
            if run is None:
                return None
            exes = repo.executions(conn, run_id=run["id"])
            approvals = repo.approvals_of_run(conn, run_id=run["id"])
            votes = repo.votes_of_run(conn, run_id=run["id"])
        return blocks.RunView(run=run, runbook=self.runbook, executions=exes,
                              approvals=approvals, votes=votes,
                              available={k: v.available for k, v in REGISTRY.items()})

    def refresh_card(self, execution_id: int, *, progress: list[str] | None = None,
                     delay: float | None = None) -> str | None:
        """Post the step's card if it has none, else update it in place (throttled)."""
        with self.db.transaction() as conn:
            exe = repo.get_execution(conn, execution_id=execution_id)
            if exe is None:
                return None
            a = repo.get_approval(conn, approval_id=exe["approval_id"]) \
                if exe["approval_id"] else None
        ts = exe["message_ts"]
        if ts is None and a is not None and a["step_id"] != ROLLBACK:
            ts = a["message_ts"]
        if ts:
            # Rendered when sent, from the database: the last update is always the truth,
            # whichever replica sends it.
            self.deps.poster.update(exe["channel"], ts, delay=delay,
                                    render=lambda: self._step_card(execution_id, progress))
            if exe["message_ts"] is None:
                with self.db.transaction() as conn:
                    repo.set_execution_message(conn, execution_id=execution_id, ts=ts)
            return ts
        content = self._step_card(execution_id, progress)
        ts = self.deps.poster.post(exe["channel"], **content) if content else None
        if ts:
            with self.db.transaction() as conn:
                repo.set_execution_message(conn, execution_id=execution_id, ts=ts)
                if a is not None and a["message_ts"] is None:
                    repo.set_approval_message(conn, approval_id=a["id"], ts=ts)
        return ts

    def _step_card(self, execution_id: int, progress: list[str] | None) -> dict | None:
        """The step's card as the database says now."""
        with self.db.transaction() as conn:
            exe = repo.get_execution(conn, execution_id=execution_id)
            if exe is None:
                return None
            a = repo.get_approval(conn, approval_id=exe["approval_id"]) \
                if exe["approval_id"] else None
            votes = repo.approval_votes(conn, approval_id=a["id"]) if a else []
        text, card = blocks.step_card(step=self.runbook.step(exe["step_id"]), exe=exe,
                                      approval=a, votes=votes, progress=progress,
                                      now=self.deps.now())
        return {"text": text, "blocks": card}

    def refresh_approval(self, approval_id: int) -> None:
        with self.db.transaction() as conn:
            a = repo.get_approval(conn, approval_id=approval_id)
            exes = repo.executions_of_approval(conn, approval_id=approval_id)
        if a is None:
            return
        if a["step_id"] == ROLLBACK:
            self.refresh_rollback_card(approval_id)
            return
        for e in exes:
            self.refresh_card(e["id"])

    def refresh_rollback_card(self, approval_id: int) -> None:
        with self.db.transaction() as conn:
            a = repo.get_approval(conn, approval_id=approval_id)
        if a is None:
            return
        if a["message_ts"]:
            self.deps.poster.update(a["channel"], a["message_ts"],
                                    render=lambda: self._rollback_card(approval_id))
            return
        content = self._rollback_card(approval_id)
        ts = self.deps.poster.post(a["channel"], **content) if content else None
        if ts:
            with self.db.transaction() as conn:
                repo.set_approval_message(conn, approval_id=approval_id, ts=ts)

    def _rollback_card(self, approval_id: int) -> dict | None:
        """The rollback request's card as the database says now."""
        with self.db.transaction() as conn:
            a = repo.get_approval(conn, approval_id=approval_id)
            if a is None:
                return None
            votes = repo.approval_votes(conn, approval_id=approval_id)
        text, card = blocks.rollback_card(approval=a, votes=votes, runbook=self.runbook,
                                          now=self.deps.now())
        return {"text": text, "blocks": card}

    def announce_interrupted(self, execution_id: int) -> None:
        with self.db.transaction() as conn:
            exe = repo.get_execution(conn, execution_id=execution_id)
        if exe is None:
            return
        step = self.runbook.step(exe["step_id"])
        text, card = blocks.interrupted_card(step=step, exe=exe)
        self.deps.poster.post(exe["channel"], text=text, blocks=card,
                              thread_ts=None)

    def post_summary(self, view: blocks.RunView) -> None:
        run_id = view.run["id"]
        text, card = blocks.run_summary(view)
        ts = self.deps.poster.post(view.run["channel"], text=text, blocks=card)
        if ts:
            with self.db.transaction() as conn:
                repo.set_run_summary_ts(conn, run_id=run_id, ts=ts)


def rule_gate_default() -> Gate:
    return Gate(approvals=1, groups=())


def _request_from_row(a: dict, votes: list[dict]) -> rule.Request:
    return rule.Request(
        id=str(a["id"]), run_id=a["run_id"], action=a["action"], params=a["params"],
        params_hash=a["params_hash"], requester=a["requester"], created_at=a["created_at"],
        expires_at=a["expires_at"], status=a["status"], required=a["required"],
        groups=tuple(a["groups"] or ()),
        approvals=tuple(v["user_id"] for v in votes if v["vote"] == "approve"),
        decided_by=a["decided_by"])

