"""Named queries over ``preflight_results`` (migration 0007): what each check found, per
execution, tied to the RC commit SHA the run pinned when it ran."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

Row = dict[str, Any]


def insert_result(conn: psycopg.Connection, *, run_id: int, execution_id: int,
                  rc_sha: str | None, result: Mapping[str, Any], now: datetime) -> Row | None:
    """Record one finished check (``PreflightResult.as_dict()``); None if already recorded."""
    return conn.execute(
        "INSERT INTO preflight_results (run_id, execution_id, rc_sha, check_name, status,"
        " finding, details, files, facts, duration_s, finished_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (execution_id, check_name) DO NOTHING RETURNING *",
        (run_id, execution_id, rc_sha, result["name"], result["status"], result["finding"],
         Jsonb(list(result.get("details") or [])), Jsonb(dict(result.get("files") or {})),
         Jsonb(dict(result.get("facts") or {})), float(result.get("duration_s") or 0.0),
         now)).fetchone()


def results_of_execution(conn: psycopg.Connection, *, execution_id: int) -> list[Row]:
    """The checks one preflight execution finished, in finishing order."""
    return conn.execute("SELECT * FROM preflight_results WHERE execution_id = %s ORDER BY id",
                        (execution_id,)).fetchall()


def latest_results(conn: psycopg.Connection, *, run_id: int) -> dict[str, Row]:
    """The newest result of every check of a run, by check name."""
    rows = conn.execute(
        "SELECT DISTINCT ON (check_name) * FROM preflight_results WHERE run_id = %s"
        " ORDER BY check_name, id DESC", (run_id,)).fetchall()
    return {r["check_name"]: r for r in rows}


def file_of(conn: psycopg.Connection, *, execution_id: int, filename: str) -> str | None:
    """The text of one file a check of this execution attached."""
    row = conn.execute(
        "SELECT files ->> %s AS text FROM preflight_results WHERE execution_id = %s"
        " AND files ? %s ORDER BY id DESC LIMIT 1",
        (filename, execution_id, filename)).fetchone()
    return row["text"] if row else None


def tie_to_sha(conn: psycopg.Connection, *, execution_id: int, rc_sha: str | None) -> None:
    """The RC SHA an execution resolved from the tag while its checks ran: tie them to it."""
    conn.execute("UPDATE preflight_results SET rc_sha = %s WHERE execution_id = %s"
                 " AND rc_sha IS NULL", (rc_sha, execution_id))
