"""The autopilot's rows (migration 0015): one per run. Every statement about the table is here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

Row = dict[str, Any]


def get(conn: psycopg.Connection, run_id: int, *, for_update: bool = False) -> Row | None:
    sql = "SELECT * FROM autopilot WHERE run_id = %s" + (" FOR UPDATE" if for_update else "")
    return conn.execute(sql, (run_id,)).fetchone()


def lock_driving(conn: psycopg.Connection) -> Row | None:
    """The active run's autopilot row when it is on, locked; None when it is off, or another
    process holds it (that one drives it: ``SKIP LOCKED``)."""
    return conn.execute(
        'SELECT a.*, r.channel, r.rc_tag FROM autopilot a JOIN runs r ON r.id = a.run_id'
        ' WHERE a."on" AND r.status = \'active\' FOR UPDATE OF a SKIP LOCKED').fetchone()


def switch_on(conn: psycopg.Connection, *, run_id: int, by: str, now: datetime) -> Row:
    return conn.execute(
        'INSERT INTO autopilot (run_id, "on", started_by, started_at, updated_at)'
        ' VALUES (%(run)s, true, %(by)s, %(now)s, %(now)s)'
        ' ON CONFLICT (run_id) DO UPDATE SET "on" = true, started_by = %(by)s,'
        ' started_at = %(now)s, paused_by = NULL, paused_at = NULL, waiting_for = NULL,'
        ' last_reason = NULL, updated_at = %(now)s RETURNING *',
        {"run": run_id, "by": by, "now": now}).fetchone()


def pause(conn: psycopg.Connection, *, run_id: int, by: str, now: datetime) -> Row | None:
    return conn.execute(
        'UPDATE autopilot SET "on" = false, paused_by = %s, paused_at = %s, updated_at = %s,'
        " last_reason = 'paused' WHERE run_id = %s RETURNING *",
        (by, now, now, run_id)).fetchone()


def stopped(conn: psycopg.Connection, *, run_id: int, reason: str, now: datetime) -> Row:
    """Turned off by itself: the reason, and one more stop notice."""
    return conn.execute(
        'UPDATE autopilot SET "on" = false, last_reason = %s, waiting_for = NULL,'
        " stops = stops + 1, updated_at = %s WHERE run_id = %s RETURNING *",
        (reason, now, run_id)).fetchone()


def waiting(conn: psycopg.Connection, *, run_id: int, waiting_for: str, now: datetime) -> bool:
    """Record what it waits for; True when that changed (the run card shows it)."""
    return conn.execute("UPDATE autopilot SET waiting_for = %s, updated_at = %s WHERE run_id = %s"
                 " AND waiting_for IS DISTINCT FROM %s",
                 (waiting_for, now, run_id, waiting_for)).rowcount == 1
