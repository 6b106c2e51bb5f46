"""What the channel sees of runs, steps and approvals, rendered from the database at send time.

The engine's transitions only say which message changed (an outbox row, see
``bot.engine.notices``); the outbox sender asks the renderers here for the
message's content when it sends, inside its own transaction, so whatever replica sends it
and however late, the channel shows what the database says now.
"""

from __future__ import annotations

from typing import Any

import psycopg

from bot.engine.core import Shared
from bot.engine.decisions import Decisions
from bot.engine.notices import DECISION
from bot.engine.plan_card import PlanCard
from bot.engine.preflight import DETAILS, PreflightGate
from bot.engine.rollback import BREAK_GLASS, TIMELINE, RollbackPlanner
from bot.slack import blocks, decision_blocks, recovery_blocks, run_card_blocks, status_blocks
from bot.slack.blocks import Content, message, upload
from bot.slack.run_view import RunView
from bot.store import repo
from runbook.rules import deadlines as deadline_rule
from runbook.steps.base import REGISTRY

FINAL = ("succeeded", "failed", "interrupted", "cancelled", "skipped")


class Cards:
    """See the module docstring. Reads only."""

    def __init__(self, shared: Shared, *, preflight: PreflightGate, planner: RollbackPlanner,
                 decisions: Decisions, plan_card: PlanCard):
        self._s = shared
        self._plan_card = plan_card
        self._decisions = decisions
        self._db = shared.db
        self._deps = shared.deps
        self._runbook = shared.runbook
        self._preflight = preflight
        self._planner = planner

    def view(self, *, run_id: int | None = None) -> RunView | None:
        """Everything status and the summary show, read in one transaction."""
        with self._db.transaction() as conn:
            return self.view_in(conn, run_id=run_id)

    def view_in(self, conn: psycopg.Connection, *, run_id: int | None) -> RunView | None:
        run = (repo.get_run(conn, run_id=run_id) if run_id else
               repo.active_run(conn) or repo.latest_run(conn))
        if run is None:
            return None
        return RunView(run=run, runbook=self._runbook,
                       executions=repo.executions(conn, run_id=run["id"]),
                       approvals=repo.approvals_of_run(conn, run_id=run["id"]),
                       votes=repo.votes_of_run(conn, run_id=run["id"]),
                       available={k: v.available for k, v in REGISTRY.items()},
                       preflight=self._preflight.summary(conn, run))

    def register_cards(self, sender: Any) -> None:
        """Tell the outbox sender how to render each kind of message the engine records."""
        # Where a message landed is the outbox's to know (its ts); nothing here writes it back
        # into the engine's rows, whose locks the engine takes before it touches the outbox.
        sender.register("card:exe", self.render_step_card)
        sender.register("decision:exe", self.render_decision_card)
        sender.register("card:approval", self.render_request_card)
        sender.register("interrupted:exe", self.render_interrupted)
        sender.register("summary:run", self.render_summary)
        sender.register("progress:exe", self.render_progress)
        sender.register("upload:exe", self.render_output_file, upload=True)
        sender.register(DETAILS, self._preflight.render_details)
        sender.register(TIMELINE, self._planner.render_rollback_timeline)
        sender.register(BREAK_GLASS, self._planner.render_break_glass)

    def render_decision_card(self, conn: psycopg.Connection, ref: str, data: Any
                             ) -> Content | None:
        """The top-level copy of a step's card whose card is in the run card's thread, posted
        when the step failed or was interrupted: the decision and its buttons live here."""
        return self.render_step_card(conn, ref, data, top_level=True)

    def render_step_card(self, conn: psycopg.Connection, ref: str, data: Any, *,
                         top_level: bool = False) -> Content | None:
        """A step's card: its approval while it waits, then its state, result and audit head."""
        exe = repo.get_execution(conn, execution_id=int(ref))
        if exe is None:
            return None
        a = repo.get_approval(conn, approval_id=exe["approval_id"]) \
            if exe["approval_id"] else None
        if a is not None and a["kind"] != "step":
            a = None  # a rollback step's approval has a card of its own
        votes = repo.approval_votes(conn, approval_id=a["id"]) if a else []
        step = self._runbook.step(exe["step_id"])
        text, card = blocks.step_card(step=step, exe=exe, approval=a, votes=votes,
                                      progress=None, now=self._deps.now(),
                                      checklist=self._preflight.checklist(conn, exe, step))
        if a is not None and exe["state"] in ("awaiting_approval", "queued", "running"):
            card = self._plan_card.with_plan_part(conn, card, a)  # what the approval binds
        if exe["state"] in FINAL:
            row = repo.step_result_audit(conn, run_id=exe["run_id"], step_id=exe["step_id"],
                                         attempt=exe["attempt"])
            if row is not None:  # the chain head as of this result, outside the database
                card.append(blocks.audit_head_context(row["id"], row["hash"]))
        if a is not None and a["params"].get("via"):  # made on the requester's behalf
            who = f"🤖 Requested by {blocks.esc(a['params']['via'])} for <@{a['requester']}>"
            card.append(blocks.context(who).to_dict())
        if top_level or not self._s.notices.exists(conn, f"{DECISION}:{exe['id']}"):
            card.extend(self._decision_lines(conn, exe, step, a))
        else:  # one set of buttons: on the top-level decision card
            card.append(blocks.context("🧭 The decision on this step is on its card in the "
                                       "channel.").to_dict())
        return message(text, card)

    def _decision_lines(self, conn: psycopg.Connection, exe: dict, step: Any,
                        a: dict | None) -> list[dict]:
        """Guided failure on a step's card (issue 21): the decision part of a failed or
        interrupted step, a skipped requirement, an approval that expired as a rejection."""
        out = self._decisions.card_blocks(conn, exe)
        skipped = self._decisions.skipped_requirements(conn, exe["run_id"], step)
        if skipped:
            out.append(decision_blocks.requires_skipped(skipped))
        if a is not None and a["status"] == "expired":
            cfg = self._deps.config
            groups = cfg.approvers.groups if cfg is not None else {}
            backup = cfg.approvers.backup_group if cfg is not None else None
            # the gate's groups; a gate naming none asked every approver group but the backup
            named = [f"<!subteam^{groups[g]}>" for g in (a["groups"] or groups)
                     if g in groups and (a["groups"] or g != backup)]
            out.append(decision_blocks.expired_line(
                asked=" ".join(named) or "the approvers",
                backup=f"<!subteam^{groups[backup]}>" if backup in groups else None))
        return out

    def render_request_card(self, conn: psycopg.Connection, ref: str, data: Any
                            ) -> Content | None:
        """A rollback or mark-done request's own card."""
        a = repo.get_approval(conn, approval_id=int(ref))
        if a is None:
            return None
        votes = repo.approval_votes(conn, approval_id=a["id"])
        if a["kind"] == "mark_done":
            text, card = recovery_blocks.mark_done_card(
                approval=a, votes=votes, step=self._runbook.step(a["step_id"]),
                now=self._deps.now())
        else:
            which, plan = self._planner.plan_text(conn, a)
            text, card = recovery_blocks.rollback_card(
                approval=a, votes=votes, runbook=self._runbook, now=self._deps.now(), plan=plan,
                which=which)
        return message(text, card)

    def render_interrupted(self, conn: psycopg.Connection, ref: str, data: Any
                           ) -> Content | None:
        exe = repo.get_execution(conn, execution_id=int(ref))
        if exe is None:
            return None
        text, card = recovery_blocks.interrupted_card(step=self._runbook.step(exe["step_id"]),
                                                      exe=exe)
        return message(text, card)

    def render_summary(self, conn: psycopg.Connection, ref: str, data: Any) -> Content | None:
        """The living run card while the run is active, its summary once it has ended."""
        view = self.view_in(conn, run_id=int(ref))
        if view is None:
            return None
        # the summary's header once there is something to sum up (the cutover's steps or the
        # rollback done), as before the run card; the run card before that
        if view.run["status"] == "active" and not view.cutover_done() \
                and view.rollback_state() != "done":
            text, card = run_card_blocks.run_card(view, **self._run_card_facts(conn, view))
            return message(text, card)
        text, card = status_blocks.run_summary(view)
        skipped = self._decisions.deviations(conn, int(ref))
        if skipped:  # a skipped step is met with a deviation: the summary lists each
            card.append(decision_blocks.deviations(skipped))
        return message(text, card)

    def render_progress(self, conn: psycopg.Connection, ref: str, data: Any) -> Content | None:
        exe = repo.get_execution(conn, execution_id=int(ref))
        lines = list((data or {}).get("lines") or [])
        if exe is None or not lines:
            return None
        text, body = blocks.progress_log(self._runbook.step(exe["step_id"]), lines)
        return message(text, body)

    def render_output_file(self, conn: psycopg.Connection, ref: str, data: Any
                           ) -> Content | None:
        exe_id, _, name = ref.partition(":")
        if name:  # upload:exe:N:NAME, a file one preflight check attached
            return self._preflight.render_file(conn, int(exe_id), name)
        exe = repo.get_execution(conn, execution_id=int(ref))
        if exe is None or not exe.get("detail"):
            return None
        step = self._runbook.step(exe["step_id"])
        return upload(f"{step.id}-output.txt", self._deps.mask(exe["detail"]),
                      f"{step.title}: output")

    def _run_card_facts(self, conn: psycopg.Connection, view: RunView) -> dict[str, Any]:
        """What the run card shows besides the steps: the autopilot's row, the open decisions
        and their owners, the next deadline (an open approval's or decision's)."""
        run_id = view.run["id"]
        # the autopilot's row (migration 0015); bot.autopilot imports the engine, so read here
        pilot = conn.execute('SELECT "on", started_by, paused_by, waiting_for, last_reason'
                             " FROM autopilot WHERE run_id = %s", (run_id,)).fetchone()
        open_decisions: list[dict[str, Any]] = []
        deadlines: list[tuple[Any, str]] = []
        for exe in view.latest().values():
            if not self._decisions.decidable(conn, exe):
                continue
            d = self._decisions.row(conn, exe["id"])
            if d is not None and d["chosen"] is not None:
                continue
            step = self._runbook.step(exe["step_id"])
            open_decisions.append({"step": step.title, "owner": d["owner"] if d else None})
            deadlines.append((deadline_rule.final_deadline(self._decisions.deadline(step, exe)),
                              f"the decision on {step.title}"))
        for a in view.approvals:
            if a["status"] == "pending" and a.get("expires_at"):
                deadlines.append((a["expires_at"], f"approval of {a['action']}"))
        return {"autopilot": pilot, "decisions": open_decisions,
                "deadline": min(deadlines, key=lambda x: x[0]) if deadlines else None}
