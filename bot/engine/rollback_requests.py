"""Rollback requests: ask for the plan, queue it once approved, resume a stopped rollback.

A rollback that stopped part-way (a step failed, or the bot died while it ran: interrupted)
is *resumed*, never queued whole again: the next ``/golive rollback``, the Start rollback
button or Retry on the stopped step asks, under the same rule as any rollback (two people,
or break-glass), to run the plan from the stopped step on. The steps that already succeeded
in this rollback are not re-run; the stopped one is re-run only once that request is
approved. Each rollback step is idempotent, so re-running the one whose outcome is unknown
is safe: maintenance on and traffic open set a state (setting it twice is the same state);
the revert runs each service on its recorded previous image (a service already on it is
left as it is); the downgrade reads the current revision first and does nothing at the goal;
the restore puts the same snapshot back (the same state; the data as it is now is dumped
first, each time); the verification only reads.

Manual completion (Mark done on a failed or interrupted rollback step, with a reason, under
the rollback's approval rule) records the step as done and continues the plan after it under
the rollback's original approval: what was approved is the plan, the person vouches for one
step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg

from bot.engine import executions
from bot.engine.core import ACTIVE_STATES, ROLLBACK, Actor, Refused, rule_gate_default
from bot.engine.rollback import RESUME, RollbackShell
from bot.store import repo
from runbook.rules import approvals as rule
from runbook.steps.base import REGISTRY

STOPPED = ("failed", "interrupted", "cancelled")


class RollbackRequests(RollbackShell):
    """See the module docstring."""

    # ------------------------------------------------------------------ where it stopped
    def _stopped_rollback(self, conn: psycopg.Connection, run: Mapping[str, Any]
                          ) -> dict[str, Any] | None:
        """The run's newest rollback when it stopped part-way, or None (none ran, it completed,
        it is still active, or cutover work was requested since: then a new plan is due).

        ``{"at": the first step not done, "exe": its newest execution, "done": [the step ids
        that succeeded before it], "params": what that rollback ran with}``."""
        plan = self.runbook.rollback
        latest = repo.latest_executions(conn, run_id=run["id"])
        exes = [latest.get(s.id) for s in plan]
        if exes[0] is None or any(e and e["state"] in ACTIVE_STATES for e in exes):
            return None
        first = next((i for i, e in enumerate(exes) if e is None or e["state"] != "succeeded"),
                     None)
        if first is None:
            return None  # completed: a new rollback is a new plan
        stopped = exes[first]
        if stopped is None or stopped["state"] not in STOPPED or (
                first == 0 and stopped["state"] == "cancelled"):
            return None
        ids = {s.id for s in plan}
        if any(e["id"] > stopped["id"] for sid, e in latest.items() if sid not in ids):
            return None  # the cutover moved on since: what ran before may no longer hold
        params = {k: v for k, v in dict(stopped["params"]).items() if k != RESUME}
        return {"at": plan[first], "exe": stopped, "params": params,
                "done": [s.id for s in plan[:first]]}

    def _stops_here(self, conn: psycopg.Connection, exe: Mapping[str, Any]) -> bool:
        """Whether the rollback a person would act on now (the active run's, else the latest
        run's) stopped at ``exe``: Retry and Mark done on a timeline whose run was finished
        and followed by another, or whose cutover moved on since, must do nothing."""
        run = repo.active_run(conn) or repo.latest_run(conn)
        if run is None or run["id"] != exe["run_id"]:
            return False
        stopped = self._stopped_rollback(conn, run)
        return stopped is not None and stopped["exe"]["id"] == exe["id"]

    def _resume_hash(self, conn: psycopg.Connection, a: Mapping[str, Any]) -> str:
        """The request's hash while its resume point still holds, else a mismatch (void)."""
        frm = (a["params"].get("args") or {}).get(RESUME)
        if not frm:
            return a["params_hash"]
        run = repo.get_run(conn, run_id=a["run_id"])
        stopped = self._stopped_rollback(conn, run) if run else None
        return a["params_hash"] if stopped and stopped["at"].id == frm else \
            "the rollback changed since the request"

    # ------------------------------------------------------------------ requests
    def request_rollback(self, *, actor: Actor, reason: str, strategy: str | None = None,
                         break_glass: str | None = None) -> str:
        """Ask for the rollback plan (or to resume a stopped rollback); from the cutover or an
        incident channel. ``strategy``: the data option (default: the plan's, or the stopped
        rollback's); ``break_glass``: a trigger id, one person."""
        with self.db.transaction() as conn:
            run = repo.active_run(conn, for_update=True) or repo.latest_run(conn)
            if run is None:
                raise Refused("There is no cutover run to roll back: no cutover has run, so "
                              "nothing was requested.")
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
            stopped = self._stopped_rollback(conn, run)
            if stopped and not strategy:
                strategy = stopped["params"].get("strategy")
            strategy = self._choose_strategy(run, strategy)
            args: dict[str, Any] = {"reason": reason,
                                    **({"strategy": strategy} if strategy else {})}
            if stopped:
                args[RESUME] = stopped["at"].id
            bound = self._bound_params(ROLLBACK, args, None, "")
            if break_glass is not None:
                return self._break_glass_rollback(conn, run=run, actor=actor, reason=reason,
                                                  trigger=break_glass, bound=bound,
                                                  args=args)
            if not self.deps.rollback_gated:
                self._queue_rollback(conn, run=run, actor=actor, approval_id=None, args=args)
                return "Rollback queued: " + " → ".join(s.title for s in self._rest(args))
            gate = self.runbook.rollback_gate or rule_gate_default()
            now = self.deps.now()
            try:
                with conn.transaction():
                    approval = repo.insert_approval(
                        conn, run_id=run["id"], step_id=ROLLBACK,
                        action="Resume rollback" if stopped else "Rollback",
                        params=bound, params_hash=rule.params_hash(run["id"], ROLLBACK, bound),
                        requester=actor.user_id, required=gate.approvals,
                        groups=list(gate.groups), reason=reason, channel=actor.channel,
                        now=now, expires_at=now + self.deps.expiry, kind="rollback")
            except psycopg.errors.UniqueViolation:
                raise Refused("A rollback request is already pending.") from None
            self._audit(conn, actor=actor.user_id, channel=actor.channel,
                        action="approval.requested", outcome="pending", run_id=run["id"],
                        detail={"step": ROLLBACK, "reason": reason, "approval": approval["id"],
                                "running_now": busy, "first": self._rest(args)[0].id,
                                "strategy": strategy, "resume": bool(stopped)})
            self._approval_changed(conn, approval)
            which = self._which_run(conn, run)
        if stopped:
            return (f"Resuming the stopped rollback of {which} at `{stopped['at'].id}` "
                    f"(not re-run: {', '.join(stopped['done']) or 'nothing done yet'}): "
                    "someone other than you must approve.")
        return f"Rollback requested for {which}: someone other than you must approve."

    def _rest(self, args: Mapping[str, Any]) -> list:
        """The plan's steps from the resume point on (all of them for a new rollback)."""
        plan = list(self.runbook.rollback)
        frm = args.get(RESUME)
        ids = [s.id for s in plan]
        return plan[ids.index(frm):] if frm in ids else plan

    def _queue_rollback(self, conn: psycopg.Connection, *, run: dict, actor: Actor,
                        approval_id: int | None, args: Mapping[str, Any]) -> None:
        plan = [s.id for s in self.runbook.rollback]
        active = repo.active_rollback(conn, run_id=run["id"], step_ids=plan)
        if active is not None:  # the unique index refuses it anyway; say why first
            raise Refused(f"A rollback of run #{run['id']} is already {active['state']} "
                          f"(`{active['step_id']}`); it is not queued twice.")
        frm = args.get(RESUME)
        if frm:  # still the same stop as when it was asked: else a person looks again
            stopped = self._stopped_rollback(conn, run)
            if stopped is None or stopped["at"].id != frm:
                raise Refused("The rollback changed since this resume was requested; see "
                              "`/golive status` and ask again.")
        now = self.deps.now()
        for exe in repo.latest_executions(conn, run_id=run["id"]).values():
            if exe["state"] in ("queued", "awaiting_approval") and exe["step_id"] not in plan:
                executions.move(conn, execution_id=exe["id"], event="cancel",
                                only=(exe["state"],), now=now, error="cancelled by rollback")
                self.notices.step_changed(conn, exe)
                if exe["approval_id"]:
                    a = repo.get_approval(conn, approval_id=exe["approval_id"], for_update=True)
                    if a and a["status"] == "pending":
                        self._close_request(conn, a, status="cancelled", by=actor.user_id,
                                            note="rollback started")
        # What the approval bound, for every step queued (only the data step reads strategy).
        steps = self._rest(args)
        self._insert_plan(conn, run=run, steps=steps, params=dict(args), actor=actor,
                          approval_id=approval_id)
        self._audit(conn, actor=actor.user_id, channel=actor.channel,
                    action="rollback.resumed" if frm else "rollback.queued", outcome="ok",
                    run_id=run["id"],
                    detail={"reason": args.get("reason"), "strategy": args.get("strategy"),
                            "from": steps[0].id,
                            "not_rerun": plan[:plan.index(steps[0].id)]})
        self._wake.set()

    def _insert_plan(self, conn: psycopg.Connection, *, run: Mapping[str, Any], steps: list,
                     params: dict, actor: Actor, approval_id: int | None) -> None:
        now = self.deps.now()
        try:
            with conn.transaction():
                for step in steps:
                    executions.create(conn, event="request", run_id=run["id"],
                                          step_id=step.id, params=params,
                                          requested_by=actor.user_id, channel=run["channel"],
                                          now=now, approval_id=approval_id)
        except psycopg.errors.UniqueViolation:
            raise Refused(f"A rollback of run #{run['id']} is already queued or running; it "
                          "is not queued twice.") from None

    def _continue_rollback(self, conn: psycopg.Connection, exe: Mapping[str, Any],
                           actor: Actor) -> list[str]:
        """A rollback step was marked done: queue the steps after it under the rollback's own
        approval (none left: the rollback is over). The step ids queued."""
        plan = [s.id for s in self.runbook.rollback]
        run = repo.get_run(conn, run_id=exe["run_id"])
        assert run is not None
        rest = list(self.runbook.rollback)[plan.index(exe["step_id"]) + 1:]
        if not rest:
            self._rollback_ended(conn, run)
            self.notices.summary_changed(conn, run)
            return []
        self._insert_plan(conn, run=run, steps=rest, params=dict(exe["params"]), actor=actor,
                          approval_id=exe["approval_id"])
        self._audit(conn, actor=actor.user_id, channel=actor.channel,
                    action="rollback.continued", outcome="ok", run_id=run["id"],
                    detail={"after": exe["step_id"], "steps": [s.id for s in rest]})
        self._wake.set()
        return [s.id for s in rest]
