"""The ``canaries`` table's named queries (every function takes an open connection)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Json

from runbook.canary.state import CanaryState

Conn = psycopg.Connection
Row = dict[str, Any]


def insert(conn: Conn, *, run_id: int, channel: str, state: CanaryState, now: datetime) -> Row:
    """A new open canary; the partial unique index refuses a second open one for the run."""
    row = conn.execute(
        "INSERT INTO canaries (run_id, channel, opened_by, state, created_at, updated_at)"
        " VALUES (%s, %s, %s, %s, %s, %s) RETURNING *",
        (run_id, channel, state.opened_by, Json(state.model_dump(mode="json")), now, now),
    ).fetchone()
    assert row is not None
    return row


def get(conn: Conn, canary_id: int, *, for_update: bool = False) -> Row | None:
    sql = "SELECT * FROM canaries WHERE id = %s" + (" FOR UPDATE" if for_update else "")
    return conn.execute(sql, (canary_id,)).fetchone()


def open_of_run(conn: Conn, run_id: int) -> Row | None:
    return conn.execute("SELECT * FROM canaries WHERE run_id = %s AND outcome = 'open'",
                        (run_id,)).fetchone()


def latest_of_run(conn: Conn, run_id: int) -> Row | None:
    return conn.execute("SELECT * FROM canaries WHERE run_id = %s ORDER BY id DESC LIMIT 1",
                        (run_id,)).fetchone()


def all_open(conn: Conn) -> list[Row]:
    return conn.execute("SELECT * FROM canaries WHERE outcome = 'open' ORDER BY id").fetchall()


def save(conn: Conn, canary_id: int, state: CanaryState, *, now: datetime,
         report: str | None = None) -> None:
    """Persist the state (and, once decided, the outcome and the filled report)."""
    conn.execute(
        "UPDATE canaries SET state = %s, outcome = %s, updated_at = %s,"
        " decided_at = %s, report = COALESCE(%s, report) WHERE id = %s",
        (Json(state.model_dump(mode="json")), state.outcome, now, state.decided_at, report,
         canary_id))


def state_of(row: Row) -> CanaryState:
    return CanaryState.from_json(row["state"])
