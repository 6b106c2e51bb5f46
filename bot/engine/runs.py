"""Runs: open one (explicitly, or with the first preflight), finish or abort it.

A run is opened and closed here only; the audit chain head ``finish`` returns pins the log."""

from __future__ import annotations

import psycopg

from bot.engine import executions
from bot.engine.approvals import Approvals
from bot.engine.core import Refused, Requester, Shared
from bot.slack import blocks
from bot.store import repo
from runbook.steps.base import REGISTRY


class Runs:
    """See the module docstring."""

    def __init__(self, shared: Shared, *, approvals: Approvals):
        self._s = shared
        self._db = shared.db
        self._deps = shared.deps
        self._runbook = shared.runbook
        self._approvals = approvals

    def start_run(self, *, actor: Requester, rc_tag: str | None, rc_sha: str | None) -> dict:
        """Open a cutover run (one at a time)."""
        with self._db.transaction() as conn:
            existing = repo.active_run(conn)
            if existing:
                raise Refused(f"Run #{existing['id']} is already active (started by "
                              f"<@{existing['started_by']}>). Finish it with `/golive finish`.")
            try:
                run = repo.insert_run(conn, channel=actor.channel, rc_tag=rc_tag, rc_sha=rc_sha,
                                      started_by=actor.user_id, now=self._deps.now())
            except psycopg.errors.UniqueViolation:
                raise Refused("Another run was started at the same moment.") from None
            self._s.audit.record(conn, actor=actor.user_id, channel=actor.channel,
                                 action="run.start",
                                 outcome="ok", run_id=run["id"],
                                 detail={"rc_tag": rc_tag, "rc_sha": rc_sha})
            self._s.notices.run_card(conn, run)  # the living run card, updated in place
        return run

    def finish_run(self, *, actor: Requester, abort: str | None = None) -> dict:
        """Close the active run: refused while work is open, unless ``abort`` (a reason) ends
        it as ``aborted``, cancelling queued steps and voiding pending approvals."""
        with self._db.transaction() as conn:
            run = repo.active_run(conn, for_update=True)
            if not run:
                raise Refused("No cutover run is active.")
            latest = repo.latest_executions(conn, run_id=run["id"])
            running = [s for s, v in latest.items() if v["state"] == "running"]
            queued = [v for v in latest.values() if v["state"] == "queued"]
            pending = repo.pending_approvals(conn, run_id=run["id"])
            if running:
                raise Refused(f"`{'`, `'.join(running)}` is running; wait for it to finish "
                              "(a running step is never abandoned mid-way).")
            if not abort and (queued or pending):
                raise Refused(f"Run #{run['id']} still has open work: "
                              f"{self.open_work(queued, pending)}. Wait for it or cancel it, "
                              "or end the run with `/golive finish --abort \"reason\"`.")
            now = self._deps.now()
            for exe in queued:
                executions.move(conn, execution_id=exe["id"], event="cancel", only=("queued",),
                                now=now, error=f"run aborted: {abort}")
                self._s.notices.step_changed(conn, exe)
            for a in pending:
                self._approvals.close(conn, a, status="void", by=actor.user_id,
                                      note=f"run aborted by <@{actor.user_id}>: {abort}")
            view = blocks.RunView(run=run, runbook=self._runbook,
                                  executions=repo.executions(conn, run_id=run["id"]),
                                  approvals=[], votes={},
                                  available={k: v.available for k, v in REGISTRY.items()})
            status = "aborted" if abort else view.outcome()
            not_run = [s.id for s in view.not_run()]
            repo.end_run(conn, run_id=run["id"], status=status, now=now)
            if self._s.notices.run_thread(conn, run["id"]):  # the run card becomes the summary
                self._s.notices.run_card(conn, run)
            self._s.audit.record(conn, actor=actor.user_id, channel=actor.channel,
                                 action="run.finish",
                                 outcome=status, run_id=run["id"],
                                 detail={"reason": abort, "not_run": not_run,
                                         "voided": [a["id"] for a in pending],
                                         "cancelled": [e["step_id"] for e in queued]})
            self._s.audit.flush(conn)  # the head read next includes this run's last rows
            head = repo.audit_head(conn)
        # The chain head, posted where the database cannot rewrite it, pins the audit log:
        # a later truncation or rewrite no longer verifies against this hash.
        return {**run, "status": status, "audit_head": head["last_hash"],
                "audit_rows": head["last_id"], "not_run": not_run,
                "voided": [a["action"] for a in pending], "left": view.stack_left()}

    @staticmethod
    def open_work(queued: list[dict], pending: list[dict]) -> str:
        items = [f"`{e['step_id']}` queued" for e in queued]
        items += [f"{blocks.esc(a['action'])} awaiting approval (requested by "
                  f"<@{a['requester']}>)" for a in pending]
        return "; ".join(items)

    def run_for(self, conn: psycopg.Connection, actor: Requester, *, auto_start: bool) -> dict:
        run = repo.active_run(conn, for_update=True)
        if run:
            return run
        if not auto_start:
            raise Refused("No cutover run is active. Start one with `/golive start &lt;rc-tag&gt;`.")
        run = repo.insert_run(conn, channel=actor.channel, rc_tag=None, rc_sha=None,
                              started_by=actor.user_id, now=self._deps.now())
        self._s.audit.record(conn, actor=actor.user_id, channel=actor.channel, action="run.start",
                             outcome="ok", run_id=run["id"], detail={"auto": True})
        self._s.notices.run_card(conn, run)
        return run
