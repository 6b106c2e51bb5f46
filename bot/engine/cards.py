"""What the channel sees of runs, steps and approvals, rendered from the database at send time."""

from __future__ import annotations

from collections.abc import Callable

from bot.engine.core import ROLLBACK, EngineCore
from bot.slack import blocks
from bot.store import repo
from runbook.steps.base import REGISTRY


class Cards(EngineCore):
    """See the module docstring."""

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
        if a["kind"] == "mark_done":
            self._refresh_request_card(approval_id, self._mark_done_card)
            self.refresh_card(a["params"]["execution"])
            return
        if a["step_id"] == ROLLBACK:
            self.refresh_rollback_card(approval_id)
            return
        for e in exes:
            self.refresh_card(e["id"])

    def refresh_rollback_card(self, approval_id: int) -> None:
        self._refresh_request_card(approval_id, self._rollback_card)

    def _refresh_request_card(self, approval_id: int,
                              render: Callable[[int], dict | None]) -> None:
        """A request with a card of its own (rollback, mark done): post it, or update it."""
        with self.db.transaction() as conn:
            a = repo.get_approval(conn, approval_id=approval_id)
        if a is None:
            return
        if a["message_ts"]:
            self.deps.poster.update(a["channel"], a["message_ts"],
                                    render=lambda: render(approval_id))
            return
        content = render(approval_id)
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

    def _mark_done_card(self, approval_id: int) -> dict | None:
        """The card asking a second person to treat an interrupted step as done."""
        with self.db.transaction() as conn:
            a = repo.get_approval(conn, approval_id=approval_id)
            if a is None:
                return None
            votes = repo.approval_votes(conn, approval_id=approval_id)
        text, card = blocks.mark_done_card(approval=a, votes=votes,
                                           step=self.runbook.step(a["step_id"]),
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


