"""The outbox table's named queries. Every function takes an open connection: ``touch`` runs in
the transaction of the state change that causes the message, the sender's queries in its own.

Times are passed in (``now``), never read from the database, so tests drive them with an
injected clock; replicas' wall clocks agree closely enough for pacing.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

Conn = psycopg.Connection
Row = dict[str, Any]
CHANNEL = "golive_outbox"  # NOTIFY channel: a touch wakes every replica's sender at commit


def touch(conn: Conn, *, key: str, channel: str, now: datetime, thread_key: str | None = None,
          delay: float = 0.0, debounce: float = 0.1, min_interval: float = 1.0,
          data: Any = None, notify: bool = True) -> None:
    """Record that message ``key`` must show the current state: UPSERT, bump its version.

    A message's first touch is due at once (or after its ``delay``): a post has nothing to
    coalesce with, and what changes later is an update anyway. A later undelayed touch is due
    after the debounce (so a burst of changes makes one update), or earlier if something is
    already pending; ``debounce=0`` (a step's result, see ``Outbox.touch(final=True)``) sends
    it at once. A delayed touch (``delay`` > debounce, e.g. "running" that should only show if
    it lasts) pushes any pending due time back. Never earlier than a second after the
    message's last update (Slack: one chat.update per second per message).
    """
    conn.execute(
        """
        INSERT INTO outbox AS o (key, channel, thread_key, data, due_at, created_at)
        VALUES (%(key)s, %(channel)s, %(thread)s, %(data)s, %(first_due)s, %(now)s)
        ON CONFLICT (key) DO UPDATE SET
            version = o.version + 1,
            data = COALESCE(EXCLUDED.data, o.data),
            thread_key = COALESCE(o.thread_key, EXCLUDED.thread_key),
            due_at = GREATEST(
                CASE WHEN %(delayed)s THEN GREATEST(%(due)s, o.due_at)
                     ELSE LEAST(%(due)s, o.due_at) END,
                o.last_update_at + %(gap)s)
        """,
        {"key": key, "channel": channel, "thread": thread_key,
         "data": Jsonb(data) if data is not None else None,
         "due": now + timedelta(seconds=max(delay, debounce)),
         "first_due": now + timedelta(seconds=max(delay, 0.0)), "now": now,
         "delayed": delay > debounce, "gap": timedelta(seconds=min_interval)})
    if notify:
        conn.execute("SELECT pg_notify(%s, '')", (CHANNEL,))


def get(conn: Conn, key: str) -> Row | None:
    """The row of message ``key``, or None."""
    return conn.execute("SELECT * FROM outbox WHERE key = %s", (key,)).fetchone()


def ts_of(conn: Conn, key: str) -> str | None:
    """The ts of message ``key`` once it is posted."""
    row = conn.execute("SELECT ts FROM outbox WHERE key = %s", (key,)).fetchone()
    return row["ts"] if row else None


def landing(conn: Conn, channel: str, ts: str) -> bool:
    """Whether ``ts`` is not yet known in ``channel`` while a post there is in flight: Slack
    may already show that message (a click on it can arrive) before its ts is committed."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM outbox WHERE channel = %(c)s AND ts = %(ts)s) AS known,"
        " EXISTS (SELECT 1 FROM outbox WHERE channel = %(c)s AND ts IS NULL"
        " AND lease_until > now()) AS posting", {"c": channel, "ts": ts}).fetchone()
    return bool(row and not row["known"] and row["posting"])


def pending(conn: Conn) -> list[Row]:
    """Rows with content not yet delivered (for status pages and tests)."""
    return conn.execute("SELECT * FROM outbox WHERE due_at IS NOT NULL ORDER BY id").fetchall()


# A row is ready when its content is due, its retry gate and any lease have passed, and a
# thread reply's parent has been posted (it needs the parent's ts). A reply to a reply (a step
# card's log when the card is in the run card's thread) goes into the root's thread: Slack
# threads are one level deep.
_READY = """
    o.due_at IS NOT NULL AND o.due_at <= %(now)s
    AND (o.not_before IS NULL OR o.not_before <= %(now)s)
    AND (o.lease_until IS NULL OR o.lease_until <= %(now)s)
    AND (o.thread_key IS NULL
         OR EXISTS (SELECT 1 FROM outbox p WHERE p.key = o.thread_key AND p.ts IS NOT NULL))
"""


# An outage's probe is the ready row tried least recently (never-failed rows first, then the
# oldest retry gate), so one row Slack keeps failing does not hold up every other one; a new
# message still never goes out before an earlier one still to post in the same thread.
_PROBE = """
    AND NOT (o.ts IS NULL AND EXISTS (
        SELECT 1 FROM outbox e WHERE e.channel = o.channel AND e.ts IS NULL
          AND e.thread_key IS NOT DISTINCT FROM o.thread_key AND e.due_at IS NOT NULL
          AND (e.due_at, e.id) < (o.due_at, o.id)))
"""


def claim(conn: Conn, *, me: str, now: datetime, lease: float, limit: int,
          probe: bool = False) -> list[Row]:
    """Lease up to ``limit`` ready rows to sender ``me`` and count the attempt (the caller
    commits before calling Slack, so a crash mid-call shows as attempts > 0 without a ts).
    ``probe``: one row to find out whether Slack is back (see ``_PROBE``)."""
    where, order = (f"{_READY}{_PROBE}", "o.not_before NULLS FIRST, o.due_at, o.id") if probe \
        else (_READY, "o.due_at, o.id")
    return conn.execute(
        f"""
        WITH picked AS (
            SELECT o.id FROM outbox o WHERE {where}
            ORDER BY {order} LIMIT %(limit)s FOR UPDATE OF o SKIP LOCKED)
        UPDATE outbox o SET lease_until = %(until)s, leased_by = %(me)s,
                            attempts = o.attempts + 1
        FROM picked WHERE o.id = picked.id
        RETURNING o.*, (SELECT COALESCE(r.ts, p.ts) FROM outbox p
                        LEFT JOIN outbox r ON r.key = p.thread_key
                        WHERE p.key = o.thread_key) AS parent_ts
        """,
        {"now": now, "until": now + timedelta(seconds=lease), "me": me, "limit": limit},
    ).fetchall()


def next_due(conn: Conn, *, now: datetime) -> datetime | None:
    """When the earliest row not ready now becomes ready (None: nothing pending)."""
    row = conn.execute(
        """
        SELECT min(GREATEST(o.due_at, o.not_before, o.lease_until)) AS at FROM outbox o
        WHERE o.due_at IS NOT NULL
          AND (o.thread_key IS NULL
               OR EXISTS (SELECT 1 FROM outbox p WHERE p.key = o.thread_key AND p.ts IS NOT NULL))
        """).fetchone()
    return row["at"] if row else None


def complete(conn: Conn, row: Row, *, me: str, now: datetime, ts: str | None, updated: bool,
             min_interval: float) -> bool:
    """Record a delivery of the version ``row`` was claimed at; a newer touch stays due."""
    cur = conn.execute(
        """
        UPDATE outbox SET ts = %(ts)s, sent_version = GREATEST(sent_version, %(v)s),
            attempts = 0, lease_until = NULL, leased_by = NULL, not_before = NULL,
            last_error = NULL,
            last_update_at = CASE WHEN %(updated)s THEN %(now)s ELSE last_update_at END,
            due_at = CASE WHEN version > %(v)s THEN
                GREATEST(COALESCE(due_at, %(now)s), last_update_at + %(gap)s,
                         CASE WHEN %(updated)s THEN %(now)s + %(gap)s END)
                END
        WHERE id = %(id)s AND leased_by = %(me)s
        """,
        {"ts": ts, "v": row["version"], "updated": updated, "now": now, "id": row["id"],
         "me": me, "gap": timedelta(seconds=min_interval)})
    return cur.rowcount == 1


def release(conn: Conn, row: Row, *, me: str, not_before: datetime | None, error: str | None,
            uncount: bool = False, park: bool = False, forget_ts: bool = False) -> None:
    """Give a claimed row back: retry after ``not_before``; ``uncount`` when Slack was not
    called (or refused before applying anything); ``park`` stops retrying until a new touch."""
    conn.execute(
        """
        UPDATE outbox SET lease_until = NULL, leased_by = NULL, not_before = %(nb)s,
            attempts = attempts - %(uncount)s,
            last_error = COALESCE(%(err)s, last_error),
            due_at = CASE WHEN %(park)s THEN NULL ELSE due_at END,
            ts = CASE WHEN %(forget)s THEN NULL ELSE ts END
        WHERE id = %(id)s AND leased_by = %(me)s
        """,
        {"nb": not_before, "uncount": int(uncount), "err": error, "park": park,
         "forget": forget_ts, "id": row["id"], "me": me})


def live_holders(conn: Conn, *, me: str, now: datetime) -> list[str]:
    """Other senders holding unexpired leases (the caller checks whether they still live)."""
    rows = conn.execute(
        "SELECT DISTINCT leased_by FROM outbox WHERE lease_until > %s AND leased_by <> %s",
        (now, me)).fetchall()
    return [r["leased_by"] for r in rows]


def drop_leases(conn: Conn, *, holder: str) -> int:
    """End a dead sender's leases: its rows are ready again (attempts kept, so a retried post
    looks for the message the dead sender may have posted)."""
    return conn.execute(
        "UPDATE outbox SET lease_until = NULL, leased_by = NULL WHERE leased_by = %s",
        (holder,)).rowcount
