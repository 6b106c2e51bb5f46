"""The audit trail: one row per command and one per state change, on the keyed hash chain.

``record`` in an engine transaction does not append at once: the rows wait in order and are
appended when the outermost transaction is about to commit (``Database.before_commit``), so
the chain head (``audit_head``, one row that every append locks) is held only from the last
statement to the commit, not across the whole request. ``flush`` appends what waits now, for
the one caller that must read the head it just extended (``/golive finish``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from functools import partial
from typing import Any, Protocol

import psycopg

from bot.store import repo


class Mask(Protocol):
    def __call__(self, value: Any, /) -> Any: ...


class Committer(Protocol):
    """What the trail needs of the database: a hook run just before the transaction commits
    (False when ``conn`` has no such transaction: the caller acts now), and running the hooks
    that wait on ``conn`` now."""

    def before_commit(self, conn: psycopg.Connection,
                      hook: Callable[[psycopg.Connection], None]) -> bool: ...

    def run_before_commit(self, conn: psycopg.Connection) -> None: ...


class AuditTrail:
    """See the module docstring."""

    def __init__(self, *, db: Committer, key: bytes, now: Callable[[], datetime], mask: Mask):
        self._db, self._key, self._now, self._mask = db, key, now, mask

    def record(self, conn: psycopg.Connection, *, actor: str, action: str, outcome: str,
               run_id: int | None = None, channel: str | None = None,
               detail: Mapping[str, Any] | None = None) -> None:
        """One audit row, appended just before ``conn``'s transaction commits (the time it
        records is now; a rolled-back transaction or savepoint drops it)."""
        row = {"now": self._now(), "actor": actor, "action": action, "outcome": outcome,
               "run_id": run_id, "channel": channel, "detail": self._mask(dict(detail or {}))}
        if not self._db.before_commit(conn, partial(self._append, row=row)):
            self._append(conn, row)  # no transaction of the pool's to wait for: append now

    def flush(self, conn: psycopg.Connection) -> None:
        """Append every row still waiting on ``conn`` (in the order they were recorded)."""
        self._db.run_before_commit(conn)

    def _append(self, conn: psycopg.Connection, row: dict[str, Any]) -> None:
        repo.append_audit(conn, key=self._key, now=row["now"], actor=row["actor"],
                          action=row["action"], outcome=row["outcome"], run_id=row["run_id"],
                          channel=row["channel"], detail=row["detail"])
