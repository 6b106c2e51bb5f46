"""Guided failure (issue 21): the decision on a failed or interrupted cutover step.

The step's card becomes a decision card (rendered here for ``bot.engine.cards``): the options
``runbook.rules.guided_failure`` allows for that step, and who owns the decision. The first
operator who clicks *Take it* owns it (a ``decisions`` row, migration 0018); only the owner's
choice counts, and a choice is taken once: every choice locks the step's execution and the
decision row, and sets ``chosen`` only while it is unset, in the same transaction as its
effect (a double click, two clickers or a redelivered envelope never take two decisions).

* **Retry**: the step again through ``Recovery.retry`` (the normal request path; a gated step
  asks for a new approval);
* **Skip**: the owner writes a reason; a second person (an eligible approver, not the owner)
  approves; the execution moves ``failed|interrupted -> skipped`` (the declared table), an
  audit row ``step.skip`` with outcome ``deviation``; steps requiring it see it as met with a
  deviation, and say so on their cards; the run summary lists the deviations;
* **Roll back**: the rollback request, under its usual rule (``Rollbacks.request_rollback``);
* **Hold**: stay; the operators are paged in the card's thread (the deadline watch reminds at
  half time and pages them again at the deadline);
* **Abort the run**: the run's RC tag typed exactly and a reason; ``Runs.finish_run(abort=)``.

Every entry point asks the policy first (the listeners, ``bot/decision_listeners.py``); this
object checks ownership and the runbook's options.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import psycopg

from bot.engine import executions
from bot.engine.core import ROLLBACK, Refused, Requester, Shared
from bot.engine.expiry import decision_open
from bot.slack import blocks, decision_blocks
from bot.store import repo
from runbook.rules import approvals as rule
from runbook.rules import deadlines as deadline_rule
from runbook.rules import guided_failure as gf

if TYPE_CHECKING:
    from bot.engine.recovery import Recovery
    from bot.engine.rollback_requests import Rollbacks
    from bot.engine.runs import Runs

HOLD = "decision:hold"
NOT_DECIDABLE = ("This step's decision card is out of date (the step was requested again, "
                 "decided, or its run is closed); nothing was done. `/golive status` shows "
                 "where things stand.")


class Decisions:
    """See the module docstring."""

    def __init__(self, shared: Shared, *, recovery: Recovery, runs: Runs,
                 rollbacks: Rollbacks):
        self._s = shared
        self._db = shared.db
        self._deps = shared.deps
        self._runbook = shared.runbook
        self._recovery = recovery
        self._runs = runs
        self._rollbacks = rollbacks

    # ------------------------------------------------------------------ reading
    def decidable(self, conn: psycopg.Connection, exe: Mapping[str, Any]) -> bool:
        """Whether ``exe`` shows a decision card now: a failed or interrupted cutover step
        (not the canary's NO-GO, not a rollback step), its newest attempt, its run active."""
        if exe["state"] not in gf.DECIDABLE:
            return False
        step = self._runbook.step(exe["step_id"])
        if step.phase == ROLLBACK or step.kind == "canary":
            return False
        latest = repo.latest_executions(conn, run_id=exe["run_id"]).get(exe["step_id"])
        run = repo.get_run(conn, run_id=exe["run_id"])
        return latest is not None and latest["id"] == exe["id"] and run is not None \
            and run["status"] == "active"

    @staticmethod
    def row(conn: psycopg.Connection, execution_id: int, *, for_update: bool = False
            ) -> dict | None:
        return repo.decision(conn, execution_id, for_update=for_update)

    def rollback_started(self, conn: psycopg.Connection, run_id: int) -> bool:
        latest = repo.latest_executions(conn, run_id=run_id)
        return any(s.id in latest for s in self._runbook.rollback)

    def deadline(self, step: Any, exe: Mapping[str, Any]) -> deadline_rule.Open:
        return decision_open(step, opened_at=exe["finished_at"] or exe["created_at"],
                             config=self._deps.config)

    def card_blocks(self, conn: psycopg.Connection, exe: Mapping[str, Any]) -> list[dict]:
        """The decision part of a step's card (``bot.engine.cards``), or the line saying what
        was decided; nothing for a step with no decision."""
        d = self.row(conn, exe["id"])
        if d is not None and d["chosen"] is not None:
            return [decision_blocks.decided_line(d)]
        if not self.decidable(conn, exe):
            return []
        step = self._runbook.step(exe["step_id"])
        choices = gf.options(step, exe["state"],
                             rollback_started=self.rollback_started(conn, exe["run_id"]))
        return decision_blocks.decision_part(
            step=step, exe=exe, decision=d, choices=choices,
            deadline=deadline_rule.final_deadline(self.deadline(step, exe)))

    def skipped_requirements(self, conn: psycopg.Connection, run_id: int, step: Any
                             ) -> list[tuple[str, str | None]]:
        """The requirements of ``step`` that were skipped, each with the skip's reason."""
        latest = repo.latest_executions(conn, run_id=run_id)
        out = []
        for req in step.requires:
            exe = latest.get(req)
            if exe is not None and exe["state"] == "skipped":
                d = self.row(conn, exe["id"])
                out.append((req, d["skip_reason"] if d else None))
        return out

    @staticmethod
    def deviations(conn: psycopg.Connection, run_id: int) -> list[dict]:
        """The run's skipped steps (its deviations), in the order they were decided."""
        return conn.execute("SELECT * FROM decisions WHERE run_id = %s AND chosen = 'skip'"
                            " ORDER BY chosen_at", (run_id,)).fetchall()

    # ------------------------------------------------------------------ the shared checks
    def _open(self, conn: psycopg.Connection, execution_id: int) -> tuple[dict, Any]:
        """The execution, locked, when its decision card is live; Refused otherwise."""
        exe = repo.get_execution(conn, execution_id=execution_id, for_update=True)
        if exe is None or not self.decidable(conn, exe):
            d = self.row(conn, execution_id) if exe is not None else None
            if d is not None and d["chosen"]:
                raise Refused(f"This decision was already taken: *{d['chosen']}* by "
                              f"<@{d['chosen_by']}>; nothing more was done.")
            raise Refused(NOT_DECIDABLE)
        return exe, self._runbook.step(exe["step_id"])

    def _owned(self, conn: psycopg.Connection, execution_id: int, user_id: str,
               option: gf.Option) -> tuple[dict, Any, dict]:
        """The execution, its step and its decision row (both locked) when ``user_id`` may
        choose ``option`` now; Refused with the reason otherwise."""
        exe, step = self._open(conn, execution_id)
        d = self.row(conn, execution_id, for_update=True)
        why = gf.check_choice(owner=d["owner"] if d else None, user=user_id, option=option,
                              step=step, state=exe["state"],
                              rollback_started=self.rollback_started(conn, exe["run_id"]))
        if why is not None:
            raise Refused(why)
        assert d is not None
        return exe, step, d

    def _chosen(self, conn: psycopg.Connection, exe: Mapping[str, Any], *, option: str,
                by: str, note: str | None = None) -> None:
        done = conn.execute(
            "UPDATE decisions SET chosen = %s, chosen_by = %s, chosen_at = %s, note = %s"
            " WHERE execution_id = %s AND chosen IS NULL RETURNING execution_id",
            (option, by, self._deps.now(), note, exe["id"])).fetchone()
        if done is None:  # the row lock makes this unreachable; never claim a second win
            raise Refused("This decision was taken a moment ago; see the card.")
        self._s.notices.step_changed(conn, exe)

    def check(self, *, execution_id: int, user_id: str, option: gf.Option) -> Any:
        """Before a modal opens (Skip, Abort): may ``user_id`` choose ``option``? The step
        (Refused otherwise). The submission checks again."""
        with self._db.transaction() as conn:
            _, step, _ = self._owned(conn, execution_id, user_id, option)
            return step

    def rc_tag(self, execution_id: int) -> str | None:
        with self._db.transaction() as conn:
            exe = repo.get_execution(conn, execution_id=execution_id)
            run = repo.get_run(conn, run_id=exe["run_id"]) if exe else None
            return run["rc_tag"] if run else None

    # ------------------------------------------------------------------ the choices
    def take(self, *, execution_id: int, user_id: str, channel: str) -> str:
        """Take it: the first operator owns the decision; another is told who does."""
        with self._db.transaction() as conn:
            exe, step = self._open(conn, execution_id)
            conn.execute(
                "INSERT INTO decisions (execution_id, run_id, step_id, owner, taken_at)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (execution_id) DO NOTHING",
                (exe["id"], exe["run_id"], exe["step_id"], user_id, self._deps.now()))
            d = self.row(conn, execution_id, for_update=True)
            assert d is not None
            _, refusal = gf.take(d["owner"], user_id)
            if refusal is not None:
                raise Refused(refusal)
            self._s.audit.record(conn, actor=user_id, channel=channel, action="decision.take",
                                 outcome="ok", run_id=exe["run_id"],
                                 detail={"step": exe["step_id"], "execution": exe["id"],
                                         "attempt": exe["attempt"]})
            self._s.notices.step_changed(conn, exe)
        return (f"You own the decision on *{blocks.esc(step.title)}*: choose on its card. "
                "Only your choice counts.")

    def retry(self, *, execution_id: int, user_id: str, channel: str) -> str:
        """Retry (idempotent steps only): the step again through the normal request path, in
        the transaction that records the decision."""
        with self._db.transaction() as conn, self._db.ambient(conn):
            exe, step, _ = self._owned(conn, execution_id, user_id, gf.Option.RETRY)
            self._chosen(conn, exe, option="retry", by=user_id)
            self._s.audit.record(conn, actor=user_id, channel=channel,
                                 action="decision.retry", outcome="ok", run_id=exe["run_id"],
                                 detail={"step": step.id, "execution": exe["id"]})
            return self._recovery.retry(execution_id=execution_id, user_id=user_id,
                                        channel=channel)

    def ask_skip(self, *, execution_id: int, user_id: str, channel: str, reason: str) -> str:
        """The owner asks to skip (with a reason); a second person approves on the card."""
        reason = reason.strip()
        if len(reason) < gf.MIN_REASON:
            raise Refused(f"Write a reason (at least {gf.MIN_REASON} characters): it goes "
                          "into the audit.")
        with self._db.transaction() as conn:
            exe, step, d = self._owned(conn, execution_id, user_id, gf.Option.SKIP)
            if d["skip_reason"]:
                raise Refused(f"A skip is already asked by <@{d['skip_requested_by']}>; "
                              "a second person approves it on the card.")
            conn.execute("UPDATE decisions SET skip_reason = %s, skip_requested_by = %s,"
                         " skip_requested_at = %s WHERE execution_id = %s",
                         (reason, user_id, self._deps.now(), execution_id))
            self._s.audit.record(conn, actor=user_id, channel=channel,
                                 action="decision.skip_requested", outcome="pending",
                                 run_id=exe["run_id"],
                                 detail={"step": step.id, "execution": exe["id"],
                                         "reason": reason})
            self._s.notices.step_changed(conn, exe)
        return (f"Skip of *{blocks.esc(step.title)}* asked: someone other than you approves it "
                "on the card.")

    def approve_skip(self, *, execution_id: int, user_id: str, channel: str) -> str:
        """The second person's approval: the step becomes ``skipped``, a deviation."""
        actor = self._deps.directory.actor(user_id)  # Slack, before the transaction opens
        policy = self._s.policy()
        with self._db.transaction() as conn:
            exe, step = self._open(conn, execution_id)
            d = self.row(conn, execution_id, for_update=True)
            if d is None or not d["skip_reason"]:
                raise Refused("No skip is asked for this step; its owner asks first.")
            why = gf.check_skip_approval(owner=d["skip_requested_by"], approver=user_id,
                                         reason=d["skip_reason"])
            if why is None and (r := rule.is_eligible(actor, policy)) is not None:
                why = (f"Only an approver may approve a skip ({r.value.replace('_', ' ')}).")
            if why is not None:
                raise Refused(why)
            moved = executions.move(
                conn, execution_id=exe["id"], event="skip", now=self._deps.now(),
                summary=f"Skipped (a deviation): asked by <@{d['skip_requested_by']}>, approved "
                        f"by <@{user_id}>: {d['skip_reason']}")
            if moved is None:
                raise Refused(NOT_DECIDABLE)
            self._chosen(conn, moved, option="skip", by=user_id, note=d["skip_reason"])
            self._s.audit.record(conn, actor=user_id, channel=channel, action="step.skip",
                                 outcome="deviation", run_id=exe["run_id"],
                                 detail={"step": step.id, "execution": exe["id"],
                                         "attempt": exe["attempt"], "was": exe["state"],
                                         "reason": d["skip_reason"],
                                         "requested_by": d["skip_requested_by"],
                                         "approved_by": user_id})
        self._s.wake.set()
        return (f"*{blocks.esc(step.title)}* is skipped, recorded as a deviation; the steps "
                "after it may go on (`/golive go` resumes the autopilot).")

    def rollback(self, *, execution_id: int, user_id: str, channel: str) -> str:
        """Roll back: the rollback request, under its usual rule."""
        with self._db.transaction() as conn, self._db.ambient(conn):
            exe, step, _ = self._owned(conn, execution_id, user_id, gf.Option.ROLLBACK)
            self._chosen(conn, exe, option="rollback", by=user_id)
            self._s.audit.record(conn, actor=user_id, channel=channel,
                                 action="decision.rollback", outcome="ok",
                                 run_id=exe["run_id"],
                                 detail={"step": step.id, "execution": exe["id"]})
            return self._rollbacks.request_rollback(
                actor=Requester(user_id, channel),
                reason=f"decision on {step.id} (attempt {exe['attempt']} {exe['state']})")

    def hold(self, *, execution_id: int, user_id: str, channel: str) -> str:
        """Hold: stay where the run is and page the operators in the card's thread."""
        with self._db.transaction() as conn:
            exe, step, _ = self._owned(conn, execution_id, user_id, gf.Option.HOLD)
            now = self._deps.now()
            conn.execute("UPDATE decisions SET held_by = %s, held_at = %s"
                         " WHERE execution_id = %s", (user_id, now, execution_id))
            self._s.audit.record(conn, actor=user_id, channel=channel, action="decision.hold",
                                 outcome="ok", run_id=exe["run_id"],
                                 detail={"step": step.id, "execution": exe["id"]})
            left = deadline_rule.final_deadline(self.deadline(step, exe)) - now
            minutes = max(0, int(left.total_seconds() // 60))
            self._s.notices.touch(
                conn, key=f"{HOLD}:{exe['id']}:{int(now.timestamp() * 1000)}",
                channel=exe["channel"], thread_key=self._s.notices.card_thread(conn, exe),
                data={"text": f"✋ <@{user_id}> holds the run at *{blocks.esc(step.title)}* "
                              f"(it {exe['state']}): nothing runs. {self.operators()} — "
                              f"please join; the decision is due in {minutes} min."})
            self._s.notices.step_changed(conn, exe)
        return (f"Holding at *{blocks.esc(step.title)}*: the operators were paged in the card's "
                "thread. Choose another option on the card when ready.")

    def abort(self, *, execution_id: int, user_id: str, channel: str, typed: str,
              reason: str) -> str:
        """Abort the run: the RC tag typed exactly and a reason; ends it as aborted."""
        with self._db.transaction() as conn, self._db.ambient(conn):
            exe, step, _ = self._owned(conn, execution_id, user_id, gf.Option.ABORT)
            run = repo.get_run(conn, run_id=exe["run_id"])
            assert run is not None
            why = gf.check_abort(typed=typed, rc_tag=run["rc_tag"], reason=reason)
            if why is not None:
                raise Refused(why)
            self._chosen(conn, exe, option="abort", by=user_id, note=reason.strip())
            self._s.audit.record(conn, actor=user_id, channel=channel,
                                 action="decision.abort", outcome="ok", run_id=exe["run_id"],
                                 detail={"step": step.id, "execution": exe["id"],
                                         "reason": reason.strip()})
            ended = self._runs.finish_run(actor=Requester(user_id, channel),
                                          abort=f"{step.id} {exe['state']}: {reason.strip()}")
            self._s.notices.summary_changed(conn, run)
        return (f"Run #{ended['id']} is aborted ({blocks.esc(reason.strip())}); the summary is "
                "in the channel.")

    # ------------------------------------------------------------------ messages
    def operators(self) -> str:
        """The operators, as a mention (users and user groups)."""
        cfg = self._deps.config
        if cfg is None:
            return "operators"
        ops = cfg.effective_operators()
        return " ".join([*(f"<@{u}>" for u in ops.users),
                         *(f"<!subteam^{g}>" for g in ops.groups)]) or "operators"

    def register(self, sender: Any) -> None:
        sender.register(HOLD, render_note)


def render_note(conn: psycopg.Connection, ref: str, data: Any) -> Any:
    text = str((data or {}).get("text") or "")
    return blocks.message(text[:3000], [blocks.section(text)]) if text else None
