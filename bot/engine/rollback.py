"""The rollback's shell (runbook section 3): its filled plan, strategy, break-glass and timeline.

The rules live in pure modules (``runbook.rollback_plan``, ``runbook.break_glass``,
``runbook.timeline``); this mixin feeds them the run's rows and facts and records what the
channels must see: the plan on the rollback card (rendered at send time), a loud break-glass
notice and the final timeline in the cutover and every incident channel (outbox rows).
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Mapping
from typing import Any

import psycopg

from bot.engine.core import ROLLBACK, Actor, Refused
from bot.engine.preflight import Preflight
from bot.ids import Action
from bot.slack import blocks
from bot.store import repo
from runbook.break_glass import BreakGlassConfig, break_glass_allowed, matches
from runbook.rollback_plan import DOWNGRADE, RESTORE, RollbackPlan, build_plan
from runbook.rules import approvals as rule
from runbook.timeline import build_timeline

log = logging.getLogger(__name__)

TIMELINE = "timeline:run"
RESUME = "resume_from"
BREAK_GLASS = "breakglass:approval"
STRATEGIES = (RESTORE, DOWNGRADE)


_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def _readable(text: str) -> str:
    """What a person can read of a reason: zero-width, direction and other format characters
    (and letters that render blank) count for nothing, so an invisible reason is no reason."""
    return "".join(ch for ch in text or "" if ch not in _BLANK_LETTERS
                   and unicodedata.category(ch) not in ("Cf", "Cc", "Co", "Cn"))


class RollbackShell(Preflight):
    """See the module docstring."""

    # ------------------------------------------------------------------ the plan
    def _chain(self) -> Any:
        """The migration scripts' revision chain, or None when they cannot be read (the plan
        then says the downgrade path is unknown)."""
        from runbook.adapters.migrations import revision_chain

        migrations = getattr(self.deps.target, "migrations", None)
        if migrations is None:
            return None
        try:
            return revision_chain(migrations.script_location)
        except Exception as e:  # noqa: BLE001 - any unreadable script directory: no path known
            log.warning("rollback plan: migration scripts unreadable: %s", e)
            return None

    def _rollback_plan(self, run: Mapping[str, Any], strategy: str | None) -> RollbackPlan:
        """This run's rollback plan, with ``strategy`` as the chosen data option."""
        return build_plan(self.runbook.rollback, dict(run.get("facts") or {}),
                          now=self.deps.now(), chain=self._chain(), strategy=strategy,
                          readonly_paths=getattr(self.deps.target, "readonly_paths", ()))

    def _configured_strategy(self) -> str | None:
        data = [s for s in self.runbook.rollback if s.kind == "rollback.data"]
        return str(dict(data[0].params).get("strategy", DOWNGRADE)).lower() if data else None

    def _choose_strategy(self, run: Mapping[str, Any], asked: str | None) -> str | None:
        """The data strategy this rollback binds; Refused when the one asked for is not offered."""
        if self._configured_strategy() is None:
            if asked:
                raise Refused(f"`--{asked}`: this runbook's rollback has no database step.")
            return None
        plan = self._rollback_plan(run, asked)
        if asked:
            option = plan.option(asked)
            if option is not None and not option.offered:
                raise Refused(f"`--{asked}` is not offered for run #{run['id']}: "
                              f"{blocks.esc(option.why_not)}.")
            return asked
        # Nothing offered: keep the runbook's choice; the card shows why the step cannot run.
        return plan.default_strategy or self._configured_strategy()

    def _which_run(self, conn: psycopg.Connection, run: Mapping[str, Any]) -> str:
        """Which run a rollback is tied to, as the card and the reply say it."""
        active = repo.active_run(conn)
        tag = f", RC {blocks.esc(run['rc_tag'])}" if run.get("rc_tag") else ""
        if active and active["id"] == run["id"]:
            return f"run #{run['id']} (the active run{tag})"
        return f"run #{run['id']} (the most recent run, {blocks.esc(run['status'])}{tag})"

    def _plan_text(self, conn: psycopg.Connection, a: Mapping[str, Any]) -> tuple[str, str]:
        """(which run, the filled plan) for a rollback request's card, from the database now."""
        run = repo.get_run(conn, run_id=a["run_id"])
        if run is None:
            return "", ""
        strategy = (a["params"].get("args") or {}).get("strategy")
        plan = self._rollback_plan(run, strategy)
        text = plan.text().replace("• (default) ", "• ▶ chosen: ")
        resume = self._resume_text(conn, a)
        return self._which_run(conn, run), (f"{resume}\n\n{text}" if resume else text)

    def _resume_text(self, conn: psycopg.Connection, a: Mapping[str, Any]) -> str:
        """What a resume request's card says it will and will not run ("" for a full plan)."""
        frm = (a["params"].get("args") or {}).get(RESUME)
        if not frm:
            return ""
        ids = [s.id for s in self.runbook.rollback]
        done = ids[:ids.index(frm)] if frm in ids else []
        return (f"Resumes the stopped rollback at {frm}: it is re-run (rollback steps are "
                "idempotent), then the rest of the plan. "
                + (f"Not re-run (done in this rollback): {', '.join(done)}." if done
                   else "Nothing of it had succeeded yet."))

    # ------------------------------------------------------------------ break-glass
    def _break_glass_check(self, conn: psycopg.Connection, run: Mapping[str, Any],
                           trigger: str, reason: str) -> str:
        """The runbook trigger a break-glass names (Refused with why when it is not allowed)."""
        config = getattr(getattr(self.deps.config, "rollback", None), "break_glass", None) \
            or BreakGlassConfig()
        triggers = tuple(self.runbook.triggers)
        found = [t for t in triggers if matches(t.id, trigger)]
        named: Any = found[0] if len(found) == 1 else trigger
        ok, why = break_glass_allowed(named, _readable(reason), config,
                                      metrics=self._trigger_metrics(conn, run, found),
                                      triggers=None if found else triggers)
        if not ok:
            raise Refused(f"Break-glass refused: {blocks.esc(why)}.")
        return named if isinstance(named, str) else named.id

    @staticmethod
    def _trigger_metrics(conn: psycopg.Connection, run: Mapping[str, Any], found: list
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

    def _break_glass_rollback(self, conn: psycopg.Connection, *, run: dict, actor: Actor,
                              reason: str, trigger: str, bound: dict, args: dict) -> str:
        """One person's rollback (or resume): a ``break_glass`` approval row decided by its
        requester, the plan queued, the audit row and a loud notice in every rollback channel.
        The hash covers what the steps run with (as for a two-person rollback), so the worker's
        check at claim recomputes it from the queued steps; the trigger is kept beside it."""
        trigger_id = self._break_glass_check(conn, run, trigger, reason)
        now = self.deps.now()
        for a in repo.pending_approvals(conn, run_id=run["id"]):
            if a["step_id"] == ROLLBACK:  # one rollback: the two-person request is superseded
                self._close_request(conn, a, status="void", by=actor.user_id,
                                    note=f"superseded by a break-glass rollback by "
                                         f"<@{actor.user_id}>")
        params_hash = rule.params_hash(run["id"], ROLLBACK, bound)
        bound = {**bound, "break_glass": trigger_id}
        approval = repo.insert_approval(
            conn, run_id=run["id"], step_id=ROLLBACK, action="Rollback (break-glass)",
            params=bound, params_hash=params_hash,
            requester=actor.user_id, required=1, groups=[], reason=reason,
            channel=actor.channel, now=now, expires_at=now + self.deps.expiry,
            kind="break_glass")
        repo.decide_approval(conn, approval_id=approval["id"], status="approved", now=now,
                             decided_by=actor.user_id, note=f"break-glass: {trigger_id}")
        self._audit(conn, actor=actor.user_id, channel=actor.channel,
                    action="rollback.break_glass", outcome="approved", run_id=run["id"],
                    detail={"trigger": trigger_id, "reason": reason,
                            "strategy": args.get("strategy"), "approval": approval["id"],
                            "resume_from": args.get("resume_from")})
        self._queue_rollback(conn, run=run, actor=actor, approval_id=approval["id"], args=args)
        for channel in self._rollback_channels():
            self.deps.outbox.touch(conn, key=f"{BREAK_GLASS}:{approval['id']}:{channel}",
                                   channel=channel)
        return (f"🚨 Break-glass rollback of {self._which_run(conn, run)} queued on your "
                f"approval alone ({trigger_id}); it is announced in every rollback channel.")

    def _rollback_channels(self) -> list[str]:
        channels = getattr(self.deps.config, "channels", None)
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
        text = (f"🚨🚨 BREAK-GLASS ROLLBACK of {self._which_run(conn, run)} by "
                f"<@{a['requester']}> alone, no second approver ("
                f"{blocks.esc(a['params'].get('break_glass', '?'))}). Reason: "
                f"_{blocks.esc(a['reason'] or '')}_. Audited; the steps follow in "
                f"<#{run['channel']}>.")
        return {"text": text, "blocks": [{"type": "section",
                                          "text": {"type": "mrkdwn", "text": text}}]}

    # ------------------------------------------------------------------ the timeline
    def _rollback_ended(self, conn: psycopg.Connection, run: Mapping[str, Any]) -> None:
        """The rollback finished or stopped: store its timeline with the run, post it in every
        rollback channel (the same message is updated if the rollback is resumed)."""
        ids = [s.id for s in self.runbook.rollback]
        timeline = build_timeline(
            repo.executions(conn, run_id=run["id"]), repo.approvals_of_run(conn, run_id=run["id"]),
            step_ids=ids, titles={s.id: s.title for s in self.runbook.rollback},
            votes=repo.votes_of_run(conn, run_id=run["id"]))
        repo.merge_run_facts(conn, run_id=run["id"],
                             facts={"rollback_timeline": timeline.as_dict()})
        for channel in self._rollback_channels() or [run["channel"]]:
            self.deps.outbox.touch(conn, key=f"{TIMELINE}:{run['id']}:{channel}",
                                   channel=channel)

    def render_rollback_timeline(self, conn: psycopg.Connection, ref: str, data: Any
                                 ) -> dict | None:
        """The rollback's timeline and, when it stopped, what ran and what did not."""
        run = repo.get_run(conn, run_id=int(ref.partition(":")[0]))
        if run is None:
            return None
        ids = [s.id for s in self.runbook.rollback]
        timeline = build_timeline(
            repo.executions(conn, run_id=run["id"]), repo.approvals_of_run(conn, run_id=run["id"]),
            step_ids=ids, titles={s.id: s.title for s in self.runbook.rollback},
            votes=repo.votes_of_run(conn, run_id=run["id"]))
        latest = repo.latest_executions(conn, run_id=run["id"])
        done = [s.title for s in self.runbook.rollback
                if latest.get(s.id, {}).get("state") == "succeeded"]
        not_done = [f"{s.title} ({latest[s.id]['state'] if s.id in latest else 'not run'})"
                    for s in self.runbook.rollback
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
        stopped = next((latest[s.id] for s in self.runbook.rollback
                        if latest.get(s.id, {}).get("state") != "succeeded"), None)
        if stopped is not None and stopped["state"] in ("failed", "interrupted"):
            out += self._stopped_blocks(stopped, here=ref.partition(":")[2] == run["channel"],
                                        cutover=run["channel"])
        return {"text": blocks.esc(text[:3000]), "blocks": out}

    @staticmethod
    def _stopped_blocks(exe: Mapping[str, Any], *, here: bool, cutover: str) -> list[dict]:
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
