"""The rollback's shell (runbook section 3): its filled plan, strategy, break-glass and timeline.

The rules live in pure modules (``runbook.rollback_plan``, ``runbook.break_glass``,
``runbook.timeline``); the planner feeds them the run's rows and facts: the filled plan and
strategy, where a rollback stopped (what a resume re-runs), the plan's text on the rollback
card and the loud break-glass notice (rendered at send time), and the final timeline in the
cutover and every incident channel (outbox rows). It writes only the run's timeline fact; the
requests that queue a plan are ``bot.engine.rollback_requests.Rollbacks``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import psycopg

from bot.engine.core import ACTIVE_STATES, Refused, Shared
from bot.ids import Action
from bot.slack import blocks
from bot.store import repo
from runbook.rollback_plan import DOWNGRADE, RESTORE, RollbackPlan, build_plan
from runbook.timeline import build_timeline

log = logging.getLogger(__name__)

TIMELINE = "timeline:run"
RESUME = "resume_from"
BREAK_GLASS = "breakglass:approval"
STRATEGIES = (RESTORE, DOWNGRADE)
STOPPED = ("failed", "interrupted", "cancelled")


class RollbackPlanner:
    """See the module docstring."""

    def __init__(self, shared: Shared):
        self._s = shared
        self._deps = shared.deps
        self._runbook = shared.runbook

    # ------------------------------------------------------------------ the plan
    def chain(self) -> Any:
        """The migration scripts' revision chain, or None when they cannot be read (the plan
        then says the downgrade path is unknown)."""
        from runbook.adapters.migrations import revision_chain

        migrations = getattr(self._deps.target, "migrations", None)
        if migrations is None:
            return None
        try:
            return revision_chain(migrations.script_location)
        except Exception as e:  # noqa: BLE001 - any unreadable script directory: no path known
            log.warning("rollback plan: migration scripts unreadable: %s", e)
            return None

    def plan(self, run: Mapping[str, Any], strategy: str | None) -> RollbackPlan:
        """This run's rollback plan, with ``strategy`` as the chosen data option."""
        return build_plan(self._runbook.rollback, dict(run.get("facts") or {}),
                          now=self._deps.now(), chain=self.chain(), strategy=strategy,
                          readonly_paths=getattr(self._deps.target, "readonly_paths", ()))

    def configured_strategy(self) -> str | None:
        data = [s for s in self._runbook.rollback if s.kind == "rollback.data"]
        return str(dict(data[0].params).get("strategy", DOWNGRADE)).lower() if data else None

    def choose_strategy(self, run: Mapping[str, Any], asked: str | None) -> str | None:
        """The data strategy this rollback binds; Refused when the one asked for is not offered."""
        if self.configured_strategy() is None:
            if asked:
                raise Refused(f"`--{asked}`: this runbook's rollback has no database step.")
            return None
        plan = self.plan(run, asked)
        if asked:
            option = plan.option(asked)
            if option is not None and not option.offered:
                raise Refused(f"`--{asked}` is not offered for run #{run['id']}: "
                              f"{blocks.esc(option.why_not)}.")
            return asked
        # Nothing offered: keep the runbook's choice; the card shows why the step cannot run.
        return plan.default_strategy or self.configured_strategy()

    def which_run(self, conn: psycopg.Connection, run: Mapping[str, Any]) -> str:
        """Which run a rollback is tied to, as the card and the reply say it."""
        active = repo.active_run(conn)
        tag = f", RC {blocks.esc(run['rc_tag'])}" if run.get("rc_tag") else ""
        if active and active["id"] == run["id"]:
            return f"run #{run['id']} (the active run{tag})"
        return f"run #{run['id']} (the most recent run, {blocks.esc(run['status'])}{tag})"

    def plan_text(self, conn: psycopg.Connection, a: Mapping[str, Any]) -> tuple[str, str]:
        """(which run, the filled plan) for a rollback request's card, from the database now."""
        run = repo.get_run(conn, run_id=a["run_id"])
        if run is None:
            return "", ""
        strategy = (a["params"].get("args") or {}).get("strategy")
        plan = self.plan(run, strategy)
        text = plan.text().replace("• (default) ", "• ▶ chosen: ")
        resume = self.resume_text(conn, a)
        return self.which_run(conn, run), (f"{resume}\n\n{text}" if resume else text)

    def resume_text(self, conn: psycopg.Connection, a: Mapping[str, Any]) -> str:
        """What a resume request's card says it will and will not run ("" for a full plan)."""
        frm = (a["params"].get("args") or {}).get(RESUME)
        if not frm:
            return ""
        ids = [s.id for s in self._runbook.rollback]
        done = ids[:ids.index(frm)] if frm in ids else []
        return (f"Resumes the stopped rollback at {frm}: it is re-run (rollback steps are "
                "idempotent), then the rest of the plan. "
                + (f"Not re-run (done in this rollback): {', '.join(done)}." if done
                   else "Nothing of it had succeeded yet."))

    # ------------------------------------------------------------------ where it stopped
    def stopped(self, conn: psycopg.Connection, run: Mapping[str, Any]
                          ) -> dict[str, Any] | None:
        """The run's newest rollback when it stopped part-way, or None (none ran, it completed,
        it is still active, or cutover work was requested since: then a new plan is due).

        ``{"at": the first step not done, "exe": its newest execution, "done": [the step ids
        that succeeded before it], "params": what that rollback ran with}``."""
        plan = self._runbook.rollback
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

    def stops_here(self, conn: psycopg.Connection, exe: Mapping[str, Any]) -> bool:
        """Whether the rollback a person would act on now (the active run's, else the latest
        run's) stopped at ``exe``: Retry and Mark done on a timeline whose run was finished
        and followed by another, or whose cutover moved on since, must do nothing."""
        run = repo.active_run(conn) or repo.latest_run(conn)
        if run is None or run["id"] != exe["run_id"]:
            return False
        stopped = self.stopped(conn, run)
        return stopped is not None and stopped["exe"]["id"] == exe["id"]

    def resume_hash(self, conn: psycopg.Connection, a: Mapping[str, Any]) -> str:
        """The request's hash while its resume point still holds, else a mismatch (void)."""
        frm = (a["params"].get("args") or {}).get(RESUME)
        if not frm:
            return a["params_hash"]
        run = repo.get_run(conn, run_id=a["run_id"])
        stopped = self.stopped(conn, run) if run else None
        return a["params_hash"] if stopped and stopped["at"].id == frm else \
            "the rollback changed since the request"

    def rest(self, args: Mapping[str, Any]) -> list:
        """The plan's steps from the resume point on (all of them for a new rollback)."""
        plan = list(self._runbook.rollback)
        frm = args.get(RESUME)
        ids = [s.id for s in plan]
        return plan[ids.index(frm):] if frm in ids else plan

    # ------------------------------------------------------------------ what the channels see
    def channels(self) -> list[str]:
        channels = getattr(self._deps.config, "channels", None)
        if channels is None:
            return []
        return list(dict.fromkeys([channels.cutover, *channels.incident]))

    def render_break_glass(self, conn: psycopg.Connection, ref: str, data: Any
                           ) -> dict | None:
        """The loud notice of a one-person rollback."""
        a = repo.get_approval(conn, approval_id=int(ref.partition(":")[0]))
        run = repo.get_run(conn, run_id=a["run_id"]) if a else None
        if a is None or run is None:
            return None
        text = (f"🚨🚨 BREAK-GLASS ROLLBACK of {self.which_run(conn, run)} by "
                f"<@{a['requester']}> alone, no second approver ("
                f"{blocks.esc(a['params'].get('break_glass', '?'))}). Reason: "
                f"_{blocks.esc(a['reason'] or '')}_. Audited; the steps follow in "
                f"<#{run['channel']}>.")
        return {"text": text, "blocks": [{"type": "section",
                                          "text": {"type": "mrkdwn", "text": text}}]}

    def ended(self, conn: psycopg.Connection, run: Mapping[str, Any]) -> None:
        """The rollback finished or stopped: store its timeline with the run, post it in every
        rollback channel (the same message is updated if the rollback is resumed)."""
        ids = [s.id for s in self._runbook.rollback]
        timeline = build_timeline(
            repo.executions(conn, run_id=run["id"]), repo.approvals_of_run(conn, run_id=run["id"]),
            step_ids=ids, titles={s.id: s.title for s in self._runbook.rollback},
            votes=repo.votes_of_run(conn, run_id=run["id"]))
        repo.merge_run_facts(conn, run_id=run["id"],
                             facts={"rollback_timeline": timeline.as_dict()})
        for channel in self.channels() or [run["channel"]]:
            self._s.notices.touch(conn, key=f"{TIMELINE}:{run['id']}:{channel}",
                                  channel=channel)

    def render_rollback_timeline(self, conn: psycopg.Connection, ref: str, data: Any
                                 ) -> dict | None:
        """The rollback's timeline and, when it stopped, what ran and what did not."""
        run = repo.get_run(conn, run_id=int(ref.partition(":")[0]))
        if run is None:
            return None
        ids = [s.id for s in self._runbook.rollback]
        timeline = build_timeline(
            repo.executions(conn, run_id=run["id"]), repo.approvals_of_run(conn, run_id=run["id"]),
            step_ids=ids, titles={s.id: s.title for s in self._runbook.rollback},
            votes=repo.votes_of_run(conn, run_id=run["id"]))
        latest = repo.latest_executions(conn, run_id=run["id"])
        done = [s.title for s in self._runbook.rollback
                if latest.get(s.id, {}).get("state") == "succeeded"]
        not_done = [f"{s.title} ({latest[s.id]['state'] if s.id in latest else 'not run'})"
                    for s in self._runbook.rollback
                    if latest.get(s.id, {}).get("state") != "succeeded"]
        head = f"🧾 Rollback of run #{run['id']}: {timeline.outcome}"
        body = timeline.text()
        if not_done:
            body += ("\n\nState now: done: " + (", ".join(done) or "nothing")
                     + ".\nNot done: " + ", ".join(not_done) + ".")
        text = f"{head}\n{body}"
        out = [{"type": "section", "text": {"type": "mrkdwn", "text": f"*{blocks.esc(head)}*"}},
               {"type": "section", "text": {"type": "mrkdwn",
                                            "text": "```" + blocks.esc(body)[:2900] + "```"}}]
        stopped = next((latest[s.id] for s in self._runbook.rollback
                        if latest.get(s.id, {}).get("state") != "succeeded"), None)
        if stopped is not None and stopped["state"] in ("failed", "interrupted"):
            out += self.stopped_blocks(stopped, here=ref.partition(":")[2] == run["channel"],
                                       cutover=run["channel"])
        return {"text": blocks.esc(text[:3000]), "blocks": out}

    @staticmethod
    def stopped_blocks(exe: Mapping[str, Any], *, here: bool, cutover: str) -> list[dict]:
        """What a person can do about a stopped rollback: nothing runs until one decides."""
        sid = blocks.esc(exe["step_id"])
        text = (f"⛔ The rollback stopped at `{sid}` ({exe['state']}); nothing else runs until "
                f"someone decides. *Retry* asks to resume at `{sid}` (approved like the "
                f"rollback): the steps done are not re-run. *Mark done* records `{sid}` as "
                "completed by hand, with a reason, under the same approval rule, then the plan "
                "continues.")
        if not here:
            return [{"type": "section", "text": {"type": "mrkdwn",
                                                 "text": f"{text} Decide in <#{cutover}>."}}]
        v = str(exe["id"])
        return [{"type": "section", "text": {"type": "mrkdwn", "text": text}},
                {"type": "actions", "block_id": f"rollback_stopped_{v}", "elements": [
                    {"type": "button", "action_id": Action.RETRY, "value": v,
                     "text": {"type": "plain_text", "text": f"Retry {exe['step_id']}"[:75]}},
                    {"type": "button", "action_id": Action.MARK_DONE, "value": v,
                     "text": {"type": "plain_text", "text": "Mark done…"}}]}]
