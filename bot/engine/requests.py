"""A runbook step's request becomes a state transition: queued at once, or awaiting an approval
that binds what it will run with (bot/engine/binding.py), behind the order and preflight
gates. Runs: ``bot.engine.runs``; clicks: ``bot.engine.clicks``; rollback requests:
``bot.engine.rollback_requests``; retry and mark done: ``bot.engine.recovery``."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import psycopg

from bot.engine import executions
from bot.engine.approvals import Approvals
from bot.engine.binding import step_params
from bot.engine.core import ACTIVE_STATES, Refused, Requester, Shared, rule_gate_default
from bot.engine.expiry import approval_expires_at
from bot.engine.plan_binding import PlanBinding
from bot.engine.plan_card import PlanCard
from bot.engine.preflight import PreflightGate
from bot.engine.runs import Runs
from bot.slack import blocks
from bot.store import repo
from runbook.model import Step
from runbook.plan.digest import step_digest
from runbook.plan.model import Plan
from runbook.rules import approvals as rule
from runbook.steps.base import REGISTRY

log = logging.getLogger(__name__)


class StepRequests:
    """See the module docstring."""

    def __init__(self, shared: Shared, *, runs: Runs, preflight: PreflightGate,
                 approvals: Approvals, plan_binding: PlanBinding, plan_card: PlanCard):
        self._s = shared
        self._binding = plan_binding
        self._plan_card = plan_card
        self._db = shared.db
        self._deps = shared.deps
        self._runbook = shared.runbook
        self._runs = runs
        self._preflight = preflight
        self._approvals = approvals

    def request(self, *, actor: Requester, command: str, args: Mapping[str, Any] | None = None,
                override: str | None = None) -> list[str]:
        """Ask for the runbook step(s) behind ``command``; returns one line per step.
        ``actor.via``: made by another requester on ``actor.user_id``'s behalf (the same
        policy, gates, binding and claim; the audit and the card say so)."""
        steps = self._runbook.steps_for_command(command)
        if not steps:
            raise Refused(f"No runbook step runs on `/golive {command}`.")
        lines: list[str] = []
        for step in steps:
            lines.append(self.request_step(actor=actor, step=step, args=dict(args or {}),
                                           override=override,
                                           auto_start=command == "preflight"))
        self._s.wake.set()
        return lines

    def request_step(self, *, actor: Requester, step: Step, args: dict[str, Any],
                     override: str | None, auto_start: bool) -> str:
        lines = self._request_step(actor=actor, step=step, args=args, override=override,
                                   auto_start=auto_start)
        return f"{lines} ({on_behalf(actor)})" if actor.via else lines

    def _record(self, conn: psycopg.Connection, actor: Requester, *, action: str,
                outcome: str, run_id: int | None, detail: dict[str, Any]) -> None:
        """The request's audit row (``via``: who made it on ``actor``'s behalf)."""
        self._s.audit.record(conn, actor=actor.user_id, channel=actor.channel, action=action,
                             outcome=outcome, run_id=run_id, detail={**_via(actor), **detail})

    def _request_step(self, *, actor: Requester, step: Step, args: dict[str, Any],
                      override: str | None, auto_start: bool) -> str:
        kind = REGISTRY.get(step.kind)
        if kind is None or not kind.available:
            with self._db.transaction() as conn:
                run = repo.active_run(conn)
                self._record(conn, actor,
                             action="step.request", outcome="not_available",
                             run_id=run["id"] if run else None, detail={"step": step.id})
            return (f"*{blocks.esc(step.title)}* is not available yet: the `{step.kind}` step kind is "
                    "listed in the runbook but not built. It was not run.")
        # What the approval will show and bind, computed before the transaction opens (the
        # registry, compose and the database take seconds): bot/engine/plan_binding.py.
        plan = self._plan_part(step, args) if step.gated or override else None
        with self._db.transaction() as conn:
            run = self._runs.run_for(conn, actor, auto_start=auto_start)
            latest = repo.latest_executions(conn, run_id=run["id"])
            states = {k: v["state"] for k, v in latest.items()}
            current = latest.get(step.id)
            if current and current["state"] == "awaiting_approval" and \
                    dict(current["params"]) != args and current["approval_id"]:
                # New arguments (e.g. another tag): the pending approval is void, not reused.
                old = repo.get_approval(conn, approval_id=current["approval_id"],
                                        for_update=True)
                if old and old["status"] == "pending":
                    self._approvals.close(conn, old, status="void", by=actor.user_id,
                                          note="superseded by a new request")
                    self._record(conn, actor, action="approval.void", outcome="void",
                                 run_id=run["id"], detail={"step": step.id,
                                                           "approval": old["id"],
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
            pre = self._preflight.state(conn, run, latest) if self._preflight.steps() else None
            gate = self._preflight.refusal(conn, run, step, pre)
            if gate and not override:
                self._record(conn, actor,
                             action="step.request", outcome="refused_preflight",
                             run_id=run["id"], detail={"step": step.id, "why": gate})
                raise Refused(f"*{blocks.esc(step.title)}* cannot start: {gate} To override, "
                              "add `--override \"reason\"` (two people must agree).")
            unmet = self._runbook.unmet_requirements(step.id, states)
            if unmet and not override:
                names = ", ".join(f"`{u}` ({blocks.state_word(states.get(u, 'pending'))})"
                                  for u in unmet)
                self._record(conn, actor,
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
                                        now=self._deps.now())
                self._record(conn, actor,
                             action="step.queued", outcome="ok", run_id=run["id"],
                             detail={"step": step.id, "args": args, "execution": exe["id"]})
                return f"Queued *{blocks.esc(step.title)}* (run #{run['id']})."
            if plan is not None and plan.run_id != run["id"]:
                plan = None  # computed for another run (one started meanwhile): none bound
            bound = self._s.bound_params(step.id, args, override,
                                         self._preflight.verdict(conn, run["id"], pre),
                                         via=actor.via,
                                         plan=step_digest(plan, step.id) if plan else None)
            gate = step.gate or rule_gate_default()
            now = self._deps.now()
            try:
                with conn.transaction():
                    approval = repo.insert_approval(
                        conn, run_id=run["id"], step_id=step.id, action=step.title,
                        params=bound, params_hash=rule.params_hash(run["id"], step.id, bound),
                        requester=actor.user_id, required=gate.approvals,
                        groups=list(gate.groups), reason=override,
                        channel=actor.channel, now=now,
                        expires_at=approval_expires_at(step, now=now, config=self._deps.config,
                                                       default=self._deps.expiry))
            except psycopg.errors.UniqueViolation:
                raise Refused(f"*{blocks.esc(step.title)}* already has a pending approval request.") from None
            if plan is not None:
                self._binding.store(conn, approval=approval, plan=plan)
            exe = executions.create(conn, event="request_gated", run_id=run["id"],
                                    step_id=step.id, params=args,
                                    requested_by=actor.user_id, channel=actor.channel,
                                    now=now, approval_id=approval["id"],
                                    override_reason=override)
            self._record(conn, actor, action="approval.requested", outcome="pending",
                         run_id=run["id"], detail={"step": step.id, "args": args,
                                                   "approval": approval["id"],
                                                   "override": override})
            self._s.notices.step_changed(conn, exe)  # its card is the approval card
            if plan is not None:
                self._plan_card.post_file(conn, approval=approval, exe=exe, plan=plan)
        return f"Approval requested for *{blocks.esc(step.title)}*: someone other than you must approve."

    def prepare(self, *, command: str, args: Mapping[str, Any] | None,
                override: str | None) -> None:
        """The plan parts the request of ``command`` will bind, computed now (before the
        request's transaction) and kept by the plan binding for :meth:`_plan_part`."""
        try:
            steps = self._runbook.steps_for_command(command)
        except Exception:  # the request says what is wrong with it
            log.warning("plan part not prepared for %s", command, exc_info=True)
            return
        for step in steps:
            self.prepare_step(step, args, override)

    def prepare_step(self, step: Step, args: Mapping[str, Any] | None,
                     override: str | None) -> None:
        """:meth:`prepare` for one step (a Retry's: the params it ran with). Never raises."""
        try:
            if (step.gated or override) and self._binding.binds(step):
                self._plan_part(step, dict(args or {}), keep=True)
        except Exception:  # the request computes what is missing
            log.warning("plan part not prepared for %s", step.id, exc_info=True)

    def _plan_part(self, step: Step, args: dict[str, Any], *, keep: bool = False
                   ) -> Plan | None:
        """The step's part of the plan for the active run (None: no run yet, or a step whose
        approval binds none): the one prepared before the request's transaction, else
        computed now (``PlanBinding.part``)."""
        if not self._binding.binds(step):
            return None
        with self._db.connection() as conn:
            run = repo.active_run(conn)
        if run is None:
            return None
        return self._binding.part(run=run, step=step, params=step_params(step, args),
                                  prepare=keep)


def on_behalf(actor: Requester) -> str:
    """"requested by autopilot for <@U…>": what the audit and the card say of a request made
    on someone's behalf."""
    return f"requested by {blocks.esc(actor.via or '')} for <@{actor.user_id}>"


def _via(actor: Requester) -> dict[str, Any]:
    return {"via": actor.via, "requested": on_behalf(actor)} if actor.via else {}
