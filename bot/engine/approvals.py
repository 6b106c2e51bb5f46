"""Approval requests once stored: which cards show them, closing one (with the steps it held),
expiring them. The rows are written by the requests that create them (step requests,
rollbacks, mark done) and decided by ``bot.engine.clicks``; this object owns the moves out of
``pending`` that are not a vote, and what the channel must see of each."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import psycopg

from bot.engine import executions
from bot.engine.core import Shared
from bot.store import repo


class Approvals:
    """See the module docstring."""

    def __init__(self, shared: Shared):
        self._s = shared
        self._deps = shared.deps
        self._db = shared.db

    def get(self, approval_id: int) -> dict | None:
        """One approval request as stored (what a card's click refers to)."""
        with self._db.transaction() as conn:
            return repo.get_approval(conn, approval_id=approval_id)

    def changed(self, conn: psycopg.Connection, a: Mapping[str, Any],
                exes: Sequence[Mapping[str, Any]] | None = None) -> None:
        """Every card that shows this approval request must show its current state (``exes``:
        the request's executions, when the caller already read them in this transaction)."""
        if a["kind"] in ("rollback", "mark_done"):
            self._s.notices.touch(conn, key=f"card:approval:{a['id']}", channel=a["channel"])
        if a["kind"] == "mark_done":
            exe = repo.get_execution(conn, execution_id=a["params"]["execution"])
            if exe is not None:
                self._s.notices.step_changed(conn, exe)
            return
        if exes is None:
            exes = repo.executions_of_approval(conn, approval_id=a["id"])
        for exe in exes:
            # A rollback step's card appears when it starts, not while the plan is queued.
            if a["kind"] == "step" or exe["state"] != "queued":
                self._s.notices.step_changed(conn, exe)

    def card_of(self, conn: psycopg.Connection, a: Mapping[str, Any],
                exes: Sequence[Mapping[str, Any]] | None = None) -> str | None:
        """The ts of the card an approval request's buttons are on (None until posted)."""
        if a["kind"] in ("rollback", "mark_done"):
            return self._s.notices.ts(conn, f"card:approval:{a['id']}")
        if exes is None:
            exes = repo.executions_of_approval(conn, approval_id=a["id"])
        return self._s.notices.ts(conn, f"card:exe:{exes[0]['id']}") if exes else None

    def close(self, conn: psycopg.Connection, a: Mapping[str, Any], *, status: str,
              by: str | None, note: str | None,
              exes: Sequence[Mapping[str, Any]] | None = None, show: bool = True) -> bool:
        """Move a pending request to ``status``; False if it was no longer pending. ``exes``:
        its executions as read earlier in this transaction; ``show=False``: the caller touches
        the cards itself once, after everything else it changes."""
        if repo.decide_approval(conn, approval_id=a["id"], status=status, now=self._deps.now(),
                                decided_by=by, note=note) is None:
            return False
        if exes is None and (status != "approved" or show):
            exes = repo.executions_of_approval(conn, approval_id=a["id"])
        if status != "approved":
            for exe in exes or ():
                if exe["state"] == "awaiting_approval":
                    executions.move(conn, execution_id=exe["id"], event="cancel",
                                    only=("awaiting_approval",),
                                    now=self._deps.now(), error=f"approval {status}")
        if show:
            self.changed(conn, a, exes)  # the card loses its buttons in the same commit
        return True

    def expire(self) -> int:
        """Close requests past their expiry and say so on their cards."""
        with self._db.transaction() as conn:
            rows = repo.expired_pending(conn, now=self._deps.now())
            for a in rows:
                self.close(conn, a, status="expired", by=None, note="expired")
                self._s.audit.record(conn, actor="golive", channel=a["channel"],
                                     action="approval.expire", outcome="expired",
                                     run_id=a["run_id"],
                                     detail={"approval": a["id"], "step": a["step_id"]})
        return len(rows)
