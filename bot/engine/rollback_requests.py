"""Rollback requests: ask for the plan, queue it once approved (or at once: break-glass, or
rollback not gated), resume a stopped rollback, continue after a step marked done.

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

import unicodedata
from collections.abc import Mapping
from typing import Any

import psycopg

from bot.engine import executions
from bot.engine.approvals import Approvals
from bot.engine.core import ROLLBACK, Refused, Requester, Shared, rule_gate_default
from bot.engine.expiry import approval_expires_at
from bot.engine.rollback import BREAK_GLASS, RESUME, RollbackPlanner
from bot.slack import blocks
from bot.store import repo
from runbook.break_glass import BreakGlassConfig, break_glass_allowed, matches
from runbook.rules import approvals as rule
from runbook.steps.base import REGISTRY

_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def _readable(text: str) -> str:
    """What a person can read of a reason: zero-width, direction and other format characters
    (and letters that render blank) count for nothing, so an invisible reason is no reason."""
    return "".join(ch for ch in text or "" if ch not in _BLANK_LETTERS
                   and unicodedata.category(ch) not in ("Cf", "Cc", "Co", "Cn"))


class Rollbacks:
    """See the module docstring. Writes the rollback's approval rows and queues its steps;
    where a rollback stopped and what its card shows is the planner's."""

    def __init__(self, shared: Shared, *, planner: RollbackPlanner, approvals: Approvals):
        self._s = shared
        self._db = shared.db
        self._deps = shared.deps
        self._runbook = shared.runbook
        self._planner = planner
        self._approvals = approvals

    # ------------------------------------------------------------------ requests
    def request_rollback(self, *, actor: Requester, reason: str, strategy: str | None = None,
                         break_glass: str | None = None) -> str:
        """Ask for the rollback plan (or to resume a stopped rollback); from the cutover or an
        incident channel. ``strategy``: the data option (default: the plan's, or the stopped
        rollback's); ``break_glass``: a trigger id, one person."""
        with self._db.transaction() as conn:
            run = repo.active_run(conn, for_update=True) or repo.latest_run(conn)
            if run is None:
                raise Refused("There is no cutover run to roll back: no cutover has run, so "
                              "nothing was requested.")
            missing = [s.kind for s in self._runbook.rollback
                       if s.kind not in REGISTRY or not REGISTRY[s.kind].available]
            if missing:
                self._s.audit.record(conn, actor=actor.user_id, channel=actor.channel,
                                     action="rollback.request", outcome="not_available",
                                     run_id=run["id"], detail={"missing": missing})
                raise Refused("Rollback is not available yet: step kinds "
                              f"{', '.join(f'`{m}`' for m in missing)} are not built.")
            busy = [s for s, v in repo.latest_executions(conn, run_id=run["id"]).items()
                    if v["state"] == "running"]
            stopped = self._planner.stopped(conn, run)
            if stopped and not strategy:
                strategy = stopped["params"].get("strategy")
            strategy = self._planner.choose_strategy(run, strategy)
            args: dict[str, Any] = {"reason": reason,
                                    **({"strategy": strategy} if strategy else {})}
            if stopped:
                args[RESUME] = stopped["at"].id
            bound = self._s.bound_params(ROLLBACK, args, None, "")
            if break_glass is not None:
                return self.break_glass(conn, run=run, actor=actor, reason=reason,
                                        trigger=break_glass, bound=bound,
                                        args=args)
            if not self._deps.rollback_gated:
                self.queue(conn, run=run, actor=actor, approval_id=None, args=args)
                return "Rollback queued: " + " → ".join(s.title for s in self._planner.rest(args))
            gate = self._runbook.rollback_gate or rule_gate_default()
            now = self._deps.now()
            try:
                with conn.transaction():
                    approval = repo.insert_approval(
                        conn, run_id=run["id"], step_id=ROLLBACK,
                        action="Resume rollback" if stopped else "Rollback",
                        params=bound, params_hash=rule.params_hash(run["id"], ROLLBACK, bound),
                        requester=actor.user_id, required=gate.approvals,
                        groups=list(gate.groups), reason=reason, channel=actor.channel,
                        now=now, kind="rollback",
                        expires_at=approval_expires_at(None, now=now, config=self._deps.config,
                                                       default=self._deps.expiry))
            except psycopg.errors.UniqueViolation:
                raise Refused("A rollback request is already pending.") from None
            self._s.audit.record(conn, actor=actor.user_id, channel=actor.channel,
                                 action="approval.requested", outcome="pending", run_id=run["id"],
                                 detail={"step": ROLLBACK, "reason": reason,
                                         "approval": approval["id"],
                                         "running_now": busy,
                                         "first": self._planner.rest(args)[0].id,
                                         "strategy": strategy, "resume": bool(stopped)})
            self._approvals.changed(conn, approval)
            which = self._planner.which_run(conn, run)
        if stopped:
            return (f"Resuming the stopped rollback of {which} at `{stopped['at'].id}` "
                    f"(not re-run: {', '.join(stopped['done']) or 'nothing done yet'}): "
                    "someone other than you must approve.")
        return f"Rollback requested for {which}: someone other than you must approve."

    # ------------------------------------------------------------------ break-glass
    def break_glass_check(self, conn: psycopg.Connection, run: Mapping[str, Any],
                           trigger: str, reason: str) -> str:
        """The runbook trigger a break-glass names (Refused with why when it is not allowed)."""
        config = getattr(getattr(self._deps.config, "rollback", None), "break_glass", None) \
            or BreakGlassConfig()
        triggers = tuple(self._runbook.triggers)
        found = [t for t in triggers if matches(t.id, trigger)]
        named: Any = found[0] if len(found) == 1 else trigger
        ok, why = break_glass_allowed(named, _readable(reason), config,
                                      metrics=self.trigger_metrics(conn, run, found),
                                      triggers=None if found else triggers)
        if not ok:
            raise Refused(f"Break-glass refused: {blocks.esc(why)}.")
        return named if isinstance(named, str) else named.id

    @staticmethod
    def trigger_metrics(conn: psycopg.Connection, run: Mapping[str, Any], found: list
                        ) -> dict[str, float]:
        """The watches' last values of the triggers' metrics (a metric trigger must have fired)."""
        from bot.watches import store as watches

        out: dict[str, float] = {}
        for st in watches.states(conn, run["id"]).values():
            state = st.get("state") or {}
            last = state.get("last") or {}
            for t in found:
                if getattr(t, "metric", None) and state.get("rollback_trigger") == t.id and \
                        isinstance(last.get("value"), int | float):
                    out[t.metric] = float(last["value"])
        return out

    def break_glass(self, conn: psycopg.Connection, *, run: dict, actor: Requester,
                              reason: str, trigger: str, bound: dict, args: dict) -> str:
        """One person's rollback (or resume): a ``break_glass`` approval row decided by its
        requester, the plan queued, the audit row and a loud notice in every rollback channel.
        The hash covers what the steps run with (as for a two-person rollback), so the worker's
        check at claim recomputes it from the queued steps; the trigger is kept beside it."""
        trigger_id = self.break_glass_check(conn, run, trigger, reason)
        now = self._deps.now()
        for a in repo.pending_approvals(conn, run_id=run["id"]):
            if a["step_id"] == ROLLBACK:  # one rollback: the two-person request is superseded
                self._approvals.close(conn, a, status="void", by=actor.user_id,
                                      note=f"superseded by a break-glass rollback by "
                                           f"<@{actor.user_id}>")
        params_hash = rule.params_hash(run["id"], ROLLBACK, bound)
        bound = {**bound, "break_glass": trigger_id}
        approval = repo.insert_approval(
            conn, run_id=run["id"], step_id=ROLLBACK, action="Rollback (break-glass)",
            params=bound, params_hash=params_hash,
            requester=actor.user_id, required=1, groups=[], reason=reason,
            channel=actor.channel, now=now, expires_at=now + self._deps.expiry,
            kind="break_glass")
        repo.decide_approval(conn, approval_id=approval["id"], status="approved", now=now,
                             decided_by=actor.user_id, note=f"break-glass: {trigger_id}")
        self._s.audit.record(conn, actor=actor.user_id, channel=actor.channel,
                             action="rollback.break_glass", outcome="approved", run_id=run["id"],
                             detail={"trigger": trigger_id, "reason": reason,
                                     "strategy": args.get("strategy"), "approval": approval["id"],
                                     "resume_from": args.get("resume_from")})
        self.queue(conn, run=run, actor=actor, approval_id=approval["id"], args=args)
        for channel in self._planner.channels():
            self._s.notices.touch(conn, key=f"{BREAK_GLASS}:{approval['id']}:{channel}",
                                  channel=channel)
        return (f"🚨 Break-glass rollback of {self._planner.which_run(conn, run)} queued on your "
                f"approval alone ({trigger_id}); it is announced in every rollback channel.")

    # ------------------------------------------------------------------ queueing the plan
    def queue(self, conn: psycopg.Connection, *, run: dict, actor: Requester,
                        approval_id: int | None, args: Mapping[str, Any]) -> None:
        plan = [s.id for s in self._runbook.rollback]
        active = repo.active_rollback(conn, run_id=run["id"], step_ids=plan)
        if active is not None:  # the unique index refuses it anyway; say why first
            raise Refused(f"A rollback of run #{run['id']} is already {active['state']} "
                          f"(`{active['step_id']}`); it is not queued twice.")
        frm = args.get(RESUME)
        if frm:  # still the same stop as when it was asked: else a person looks again
            stopped = self._planner.stopped(conn, run)
            if stopped is None or stopped["at"].id != frm:
                raise Refused("The rollback changed since this resume was requested; see "
                              "`/golive status` and ask again.")
        now = self._deps.now()
        for exe in repo.latest_executions(conn, run_id=run["id"]).values():
            if exe["state"] in ("queued", "awaiting_approval") and exe["step_id"] not in plan:
                executions.move(conn, execution_id=exe["id"], event="cancel",
                                only=(exe["state"],), now=now, error="cancelled by rollback")
                self._s.notices.step_changed(conn, exe)
                if exe["approval_id"]:
                    a = repo.get_approval(conn, approval_id=exe["approval_id"], for_update=True)
                    if a and a["status"] == "pending":
                        self._approvals.close(conn, a, status="cancelled", by=actor.user_id,
                                              note="rollback started")
        # What the approval bound, for every step queued (only the data step reads strategy).
        steps = self._planner.rest(args)
        self.insert_plan(conn, run=run, steps=steps, params=dict(args), actor=actor,
                         approval_id=approval_id)
        self._s.audit.record(conn, actor=actor.user_id, channel=actor.channel,
                             action="rollback.resumed" if frm else "rollback.queued", outcome="ok",
                             run_id=run["id"],
                             detail={"reason": args.get("reason"), "strategy": args.get("strategy"),
                                     "from": steps[0].id,
                                     "not_rerun": plan[:plan.index(steps[0].id)]})
        self._s.wake.set()

    def insert_plan(self, conn: psycopg.Connection, *, run: Mapping[str, Any], steps: list,
                     params: dict, actor: Requester, approval_id: int | None) -> None:
        now = self._deps.now()
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

    def continue_after(self, conn: psycopg.Connection, exe: Mapping[str, Any],
                           actor: Requester) -> list[str]:
        """A rollback step was marked done: queue the steps after it under the rollback's own
        approval (none left: the rollback is over). The step ids queued."""
        plan = [s.id for s in self._runbook.rollback]
        run = repo.get_run(conn, run_id=exe["run_id"])
        assert run is not None
        rest = list(self._runbook.rollback)[plan.index(exe["step_id"]) + 1:]
        if not rest:
            self._planner.ended(conn, run)
            self._s.notices.summary_changed(conn, run)
            return []
        self.insert_plan(conn, run=run, steps=rest, params=dict(exe["params"]), actor=actor,
                         approval_id=exe["approval_id"])
        self._s.audit.record(conn, actor=actor.user_id, channel=actor.channel,
                             action="rollback.continued", outcome="ok", run_id=run["id"],
                             detail={"after": exe["step_id"], "steps": [s.id for s in rest]})
        self._s.wake.set()
        return [s.id for s in rest]
