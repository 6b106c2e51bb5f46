"""The one writer of step executions, and the one declared table of their transitions.

Every ``INSERT INTO step_executions`` and ``UPDATE step_executions`` in the bot is in this module
(tests/unit/test_execution_transitions.py scans for strays). A change of state names an event;
the table says from which states the event may fire and where it leads. An event the table
does not declare for a state is refused (``Undeclared``) before any SQL runs; a row that is no
longer in a state the event fires from is left alone (the compare-and-set returns None).

    new                -- request ---------> queued
    new                -- request_gated ---> awaiting_approval
    new                -- record_success --> succeeded   (an outcome decided outside the worker:
    new                -- record_failure --> failed       the canary's sign-off)
    awaiting_approval  -- approve ---------> queued
    awaiting_approval  -- cancel ----------> cancelled   (rejected, expired, void, superseded)
    queued             -- cancel ----------> cancelled   (void, held, aborted, rolled back)
    queued             -- claim -----------> running
    running            -- succeed ---------> succeeded
    running            -- fail ------------> failed
    running            -- interrupt -------> interrupted (timeout, vanished, reaped)
    interrupted|failed -- mark_done -------> succeeded   (two people said it was done by hand)
    interrupted|failed -- skip ------------> skipped     (guided failure: two people, a deviation)
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

NEW = "new"
"""The state of a step execution that has no row yet."""

TRANSITIONS: Mapping[tuple[str, str], str] = {
    (NEW, "request"): "queued",
    (NEW, "request_gated"): "awaiting_approval",
    (NEW, "record_success"): "succeeded",
    (NEW, "record_failure"): "failed",
    ("awaiting_approval", "approve"): "queued",
    ("awaiting_approval", "cancel"): "cancelled",
    ("queued", "cancel"): "cancelled",
    ("queued", "claim"): "running",
    ("running", "succeed"): "succeeded",
    ("running", "fail"): "failed",
    ("running", "interrupt"): "interrupted",
    ("interrupted", "mark_done"): "succeeded",
    ("failed", "mark_done"): "succeeded",
    ("interrupted", "skip"): "skipped",
    ("failed", "skip"): "skipped",
}

FINISHED = frozenset({"succeeded", "failed", "skipped", "interrupted", "cancelled"})
OUTCOME_EVENT = {"succeeded": "succeed", "failed": "fail", "interrupted": "interrupt"}
"""The event that records a step's end, by the outcome the worker saw."""

Row = dict[str, Any]


class Undeclared(Exception):
    """A transition the table does not declare: a bug, never carried out."""


def next_state(state: str, event: str) -> str:
    """Where ``event`` leads from ``state``; Undeclared when the table has no such edge."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise Undeclared(f"step execution: no transition {state!r} --{event}-->") from None


def _edges(event: str, only: tuple[str, ...] | None) -> tuple[list[str], str]:
    """The states ``event`` fires from (narrowed to ``only``) and the one state it leads to."""
    sources = [s for (s, e) in TRANSITIONS if e == event and s != NEW]
    if only is not None:
        for s in only:
            next_state(s, event)  # Undeclared for an edge the table lacks
        sources = [s for s in sources if s in only]
    targets = {TRANSITIONS[(s, event)] for s in sources}
    if len(targets) != 1:
        raise Undeclared(f"step execution: event {event!r} has no single target")
    return sources, targets.pop()


def create(conn: psycopg.Connection, *, event: str, run_id: int, step_id: str,
           params: Mapping[str, Any], requested_by: str, channel: str, now: datetime,
           approval_id: int | None = None, override_reason: str | None = None) -> Row:
    """A new attempt; the unique (run, step, attempt) key turns a concurrent duplicate into an
    IntegrityError instead of a second execution."""
    state = next_state(NEW, event)
    row = conn.execute(
        "INSERT INTO step_executions (run_id, step_id, attempt, state, params, requested_by,"
        " approval_id, override_reason, channel, created_at, queued_at, finished_at)"
        " VALUES (%s, %s, (SELECT coalesce(max(attempt), 0) + 1 FROM step_executions"
        "   WHERE run_id = %s AND step_id = %s), %s, %s, %s, %s, %s, %s, %s,"
        "   CASE WHEN %s = 'queued' THEN %s::timestamptz END,"
        "   CASE WHEN %s THEN %s::timestamptz END) RETURNING *",
        (run_id, step_id, run_id, step_id, state, Jsonb(dict(params)), requested_by,
         approval_id, override_reason, channel, now, state, now, state in FINISHED,
         now)).fetchone()
    assert row is not None
    return row


def record(conn: psycopg.Connection, *, outcome: str, run_id: int, step_id: str,
           params: Mapping[str, Any], requested_by: str, channel: str, now: datetime,
           started_at: datetime | None, summary: str | None, error: str | None) -> Row:
    """An outcome decided outside the worker (the canary's GO or NO-GO), as one attempt."""
    event = {"succeeded": "record_success", "failed": "record_failure"}.get(outcome, outcome)
    row = create(conn, event=event, run_id=run_id, step_id=step_id, params=params,
                 requested_by=requested_by, channel=channel, now=now)
    done = conn.execute(
        "UPDATE step_executions SET started_at = %s, summary = %s, error = %s WHERE id = %s"
        " RETURNING *", (started_at, summary, error, row["id"])).fetchone()
    assert done is not None
    return done


def move(conn: psycopg.Connection, *, execution_id: int, event: str, now: datetime,
         only: tuple[str, ...] | None = None, **fields: Any) -> Row | None:
    """Compare-and-set a step's state by ``event`` (from any state the table allows it from,
    narrowed to ``only``); None when the row was no longer in one of those states."""
    sources, to = _edges(event, only)
    sets = ["state = %(to)s"]
    if to == "queued":
        sets.append("queued_at = %(now)s")
    if to == "running":
        sets.append("started_at = %(now)s")
    if to in FINISHED:
        sets.append("finished_at = %(now)s")
    for k in fields:
        sets.append(f"{k} = %({k})s")
    params = {"to": to, "now": now, "id": execution_id, "from": sources, **fields}
    return conn.execute(
        f"UPDATE step_executions SET {', '.join(sets)} WHERE id = %(id)s"
        " AND state = ANY(%(from)s) RETURNING *", params).fetchone()


def interrupt_if_stale(conn: psycopg.Connection, *, execution_id: int, lease_s: float,
                       now: datetime, error: str) -> Row | None:
    """Compare-and-set running -> interrupted, only if its heartbeat is older than ``lease_s``
    by the database's clock (or was never set); None otherwise."""
    next_state("running", "interrupt")
    return conn.execute(
        "UPDATE step_executions SET state = 'interrupted', finished_at = %s, error = %s"
        " WHERE id = %s AND state = 'running' AND (heartbeat_at IS NULL"
        "   OR heartbeat_at < now() - make_interval(secs => %s)) RETURNING *",
        (now, error, execution_id, lease_s)).fetchone()


def hold_queued(conn: psycopg.Connection, *, run_id: int, now: datetime,
                error: str) -> list[Row]:
    """Cancel every queued step of a run (something in it failed; a person decides again)."""
    next_state("queued", "cancel")
    return conn.execute(
        "UPDATE step_executions SET state = 'cancelled', finished_at = %s, error = %s"
        " WHERE run_id = %s AND state = 'queued' RETURNING *", (now, error, run_id)).fetchall()


def heartbeat(conn: psycopg.Connection, *, execution_id: int) -> bool:
    """Renew a running step's heartbeat (database time); False once it is no longer running."""
    return conn.execute("UPDATE step_executions SET heartbeat_at = now() WHERE id = %s"
                        " AND state = 'running' RETURNING id", (execution_id,)).fetchone() \
        is not None
