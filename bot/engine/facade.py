"""The engine's facade: builds the engine's objects, each given its collaborators, and keeps
the calls the commands, the listeners, the rooms and the runtime make.

Who owns which state (each table is written by the one object named):
  runs                      Runs (open, finish)
  step_executions           bot.engine.executions, the one writer, called by StepRequests,
                            Clicks, Approvals, Rollbacks, Recovery, Claimer, StepRunner,
                            Reaper and StepOutcomes (the canary's outcome)
  decisions                 Decisions (guided failure: the owner, the choice taken once)
  approvals, votes          StepRequests, Rollbacks and Recovery create; Clicks votes and
                            decides; Approvals closes and expires
  preflight_results         PreflightGate
  step_plans                PlanBinding (the plan part an approval binds)
  the run's timeline fact   RollbackPlanner
  audit_log                 AuditTrail (every object records through it)
  outbox                    Notices (every object touches through it)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.engine.approvals import Approvals
from bot.engine.audit_trail import AuditTrail
from bot.engine.cards import Cards
from bot.engine.claim import Claimer
from bot.engine.clicks import Clicks
from bot.engine.core import Deps, Requester, Shared
from bot.engine.decisions import Decisions
from bot.engine.notices import Notices
from bot.engine.outcomes import StepOutcomes
from bot.engine.plan_binding import PlanBinding
from bot.engine.plan_card import PlanCard
from bot.engine.plan_certification import PlanCertifier
from bot.engine.plan_drift import PlanDrift
from bot.engine.plan_parts import PlanParts
from bot.engine.preflight import PreflightGate
from bot.engine.reaper import Reaper
from bot.engine.recovery import Recovery
from bot.engine.requests import StepRequests
from bot.engine.rollback import RollbackPlanner
from bot.engine.rollback_requests import Rollbacks
from bot.engine.runs import Runs
from bot.engine.watch_control import WatchControl
from bot.engine.worker import StepRunner, WorkerLoop
from bot.slack.run_view import RunView
from bot.store import repo
from bot.store.db import Database
from runbook.model import Runbook
from runbook.rules import approvals as rule


class Engine:
    """The engine of one bot process (see the module docstring)."""

    def __init__(self, *, db: Database, runbook: Runbook, deps: Deps):
        s = Shared.build(db=db, runbook=runbook, deps=deps)
        self._s = s
        # Approvals bound to the plan, drift at the claim, certification (issue 20); the
        # binding and the certifier are public for who watches them (after_step: metrics).
        parts = PlanParts(runbook=runbook, target=deps.target, config=deps.config,
                          secrets=deps.secrets, now=deps.now)
        self.plan_binding = PlanBinding(parts=parts, now=deps.now)
        self._plan_card = PlanCard(parts=parts, notices=s.notices)
        drift = PlanDrift(db=db, runbook=runbook, parts=parts)
        self.plan_certifier = PlanCertifier(db=db, target=deps.target, parts=parts)
        preflight = PreflightGate(s)
        planner = RollbackPlanner(s)
        approvals = Approvals(s)
        rollbacks = Rollbacks(s, planner=planner, approvals=approvals)
        self._runs = Runs(s, approvals=approvals)
        self._requests = StepRequests(s, runs=self._runs, preflight=preflight,
                                      approvals=approvals, plan_binding=self.plan_binding,
                                      plan_card=self._plan_card)
        self._recovery = Recovery(s, requests=self._requests, rollbacks=rollbacks,
                                  planner=planner, approvals=approvals)
        self._clicks = Clicks(s, approvals=approvals, preflight=preflight, planner=planner,
                              rollbacks=rollbacks, recovery=self._recovery)
        self._runner = StepRunner(s, claimer=Claimer(s, preflight=preflight, plan_drift=drift),
                                  preflight=preflight, planner=planner, plan_drift=drift,
                                  plan_certifier=self.plan_certifier)
        self._reaper = Reaper(s, planner=planner)
        self._loop = WorkerLoop(s, runner=self._runner, reaper=self._reaper,
                                approvals=approvals)
        self._decisions = Decisions(s, recovery=self._recovery, runs=self._runs,
                                    rollbacks=rollbacks)
        self._cards = Cards(s, preflight=preflight, planner=planner, decisions=self._decisions,
                            plan_card=self._plan_card)
        self._approvals = approvals
        self._rollbacks = rollbacks
        self.watch_control = WatchControl(db=db, audit=s.audit, notices=s.notices, now=deps.now)

    # ------------------------------------------------------------------ public services
    # What the listeners, the commands and the rooms outside the engine may use (they never
    # reach the database, the dependencies or a private attribute).
    @property
    def runbook(self) -> Runbook:
        return self._s.runbook

    @property
    def audit(self) -> AuditTrail:
        """Record an action on the audit chain (the canary's audit rows)."""
        return self._s.audit

    @property
    def notices(self) -> Notices:
        """Touch a message (the canary's and the watches' own messages)."""
        return self._s.notices

    @property
    def outcomes(self) -> StepOutcomes:
        """Record a step's outcome decided outside the worker (the canary's GO/NO-GO)."""
        return self._s.outcomes

    @property
    def decisions(self) -> Decisions:
        """Guided failure: Take it and the options of a failed or interrupted step's card."""
        return self._decisions

    @property
    def secrets(self) -> Mapping[str, str]:
        """The values no reply, log or audit row may show (masked everywhere)."""
        return self._s.deps.secrets

    def account(self, user_id: str) -> rule.Actor:
        """The Slack account behind ``user_id`` (DirectoryUnavailable when Slack cannot say)."""
        return self._s.deps.directory.actor(user_id)

    def landing(self, channel: str, ts: str) -> bool:
        """Whether a message is being posted in ``channel`` and its ts is not yet recorded."""
        with self._s.db.transaction() as conn:
            return self._s.notices.landing(conn, channel, ts)

    def alert_reason(self, alert_id: int) -> str | None:
        """The rollback reason a Start rollback click on a watch alert gives (None: no such
        alert)."""
        from bot.watches.store import alert_reason

        return alert_reason(self._s.db, alert_id)

    # ------------------------------------------------------------------ the audit of requests
    def audit_command(self, *, actor: Requester, text: str, outcome: str,
                      detail: Mapping[str, Any] | None = None) -> None:
        """Record a received command and how it ended (every command is audited)."""
        with self._s.db.transaction() as conn:
            run = repo.active_run(conn)
            self._s.audit.record(conn, actor=actor.user_id, channel=actor.channel,
                                 action="command", outcome=outcome,
                                 run_id=run["id"] if run else None,
                                 detail={"text": text[:500], **(detail or {})})

    def audit_refusal(self, *, actor: Requester, action: str, refusal: str,
                      reason: str) -> None:
        """Record a refused button or modal with its reason (commands: ``audit_command``)."""
        with self._s.db.transaction() as conn:
            run = repo.active_run(conn)
            self._s.audit.record(conn, actor=actor.user_id, channel=actor.channel,
                                 action=f"refused.{action}", outcome=refusal,
                                 run_id=run["id"] if run else None, detail={"reason": reason})

    # ------------------------------------------------------------------ runs and requests
    def start_run(self, *, actor: Requester, rc_tag: str | None, rc_sha: str | None) -> dict:
        return self._runs.start_run(actor=actor, rc_tag=rc_tag, rc_sha=rc_sha)

    def finish_run(self, *, actor: Requester, abort: str | None = None) -> dict:
        return self._runs.finish_run(actor=actor, abort=abort)

    def request(self, *, actor: Requester, command: str, args: Mapping[str, Any] | None = None,
                override: str | None = None, on_behalf_of: str | None = None,
                via: str | None = None) -> list[str]:
        """Ask for the runbook step(s) behind ``command``: one line per step.

        ``on_behalf_of``: another requester (``via``, default ``actor.user_id``: e.g. the
        autopilot) asks for that user. The request is theirs under the same policy, gates,
        preflight gate, binding and exactly-once claim; the audit detail and the step card say
        "requested by <via> for <@user>"."""
        if on_behalf_of is not None:
            actor = Requester(on_behalf_of, actor.channel, via=via or actor.user_id)
        return self._requests.request(actor=actor, command=command, args=args,
                                      override=override)

    def prepare_request(self, *, command: str, args: Mapping[str, Any] | None = None,
                        override: str | None = None) -> None:
        """Compute, before the request's transaction opens, the plan part each gated step of
        ``command`` will bind (kept a minute for ``request``; seconds of registry, compose
        and database reads). Never raises: ``request`` computes what is missing."""
        self._requests.prepare(command=command, args=args, override=override)

    def prepare_retry(self, execution_id: int) -> None:
        """:meth:`prepare_request` for a Retry of execution ``execution_id`` (its step, with
        the params and override it ran with), before the click's transaction opens."""
        self._recovery.prepare_retry(execution_id)

    def request_rollback(self, *, actor: Requester, reason: str, strategy: str | None = None,
                         break_glass: str | None = None) -> str:
        return self._rollbacks.request_rollback(actor=actor, reason=reason, strategy=strategy,
                                                break_glass=break_glass)

    def approval(self, approval_id: int) -> dict | None:
        return self._approvals.get(approval_id)

    def click(self, *, approval_id: int, kind: str, user_id: str, channel: str,
              reason: str = "", message_ts: str | None = None) -> rule.Decision:
        return self._clicks.click(approval_id=approval_id, kind=kind, user_id=user_id,
                                  channel=channel, reason=reason, message_ts=message_ts)

    def retry(self, *, execution_id: int, user_id: str, channel: str) -> str:
        return self._recovery.retry(execution_id=execution_id, user_id=user_id,
                                    channel=channel)

    def mark_done(self, *, execution_id: int, user_id: str, channel: str, reason: str) -> str:
        return self._recovery.mark_done(execution_id=execution_id, user_id=user_id,
                                        channel=channel, reason=reason)

    def expire_approvals(self) -> int:
        return self._approvals.expire()

    # ------------------------------------------------------------------ what the channel sees
    def view(self, *, run_id: int | None = None) -> RunView | None:
        return self._cards.view(run_id=run_id)

    def register_cards(self, sender: Any) -> None:
        self._cards.register_cards(sender)
        self._decisions.register(sender)
        self._plan_card.register(sender)

    # ------------------------------------------------------------------ the worker
    def start_worker(self) -> None:
        self._loop.start()

    def stop_worker(self, timeout: float = 5.0) -> None:
        self._loop.stop(timeout)

    def wake(self) -> None:
        self._loop.wake()

    def run_next(self) -> bool:
        """Claim one runnable queued step and run it to its end; False when none was."""
        return self._runner.run_next()

    def reap_interrupted(self) -> int:
        return self._reaper.reap()
