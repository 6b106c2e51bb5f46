"""Named queries over the bot's schema. Every function takes an open connection, so the caller
decides the transaction: a state transition and its audit row commit together or not at all."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from bot import audit

Conn = psycopg.Connection
Row = dict[str, Any]
Mask = Callable[[Any], Any]


def _identity(x: Any) -> Any:
    return x


# --- audit -----------------------------------------------------------------------------------

def append_audit(conn: Conn, *, key: bytes, now: datetime, actor: str, action: str,
                 outcome: str, run_id: int | None = None, channel: str | None = None,
                 detail: Mapping[str, Any] | None = None, mask: Mask = _identity) -> int:
    """Append one row to the keyed hash chain (locks the chain head until the caller commits).

    Text PostgreSQL cannot store (NUL) is kept in its escaped form, so every event leaves a row.
    """
    # FOR UPDATE serialises appends: without it two writers read the same head, pick the same id
    # and the second one's transaction (with the state change it records) rolls back.
    head = conn.execute("SELECT last_id, last_hash FROM audit_head FOR UPDATE").fetchone()
    assert head is not None, "audit_head row missing: run `golive db upgrade`"
    new_id = head["last_id"] + 1
    clean = audit.storable(json.loads(json.dumps(mask(dict(detail or {})), default=str)))
    actor, channel, action, outcome = audit.storable([actor, channel, action, outcome])
    at = now
    h = audit.row_hash(head["last_hash"], key=key, id=new_id, at=at, run_id=run_id, actor=actor,
                       channel=channel, action=action, detail=clean, outcome=outcome)
    # The row and the head in one statement: one round trip while the head is held.
    conn.execute(
        "WITH appended AS (INSERT INTO audit_log (id, at, run_id, actor, channel, action,"
        " detail, outcome, prev_hash, hash) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s))"
        " UPDATE audit_head SET last_id = %s, last_hash = %s",
        (new_id, at, run_id, actor, channel, action, Jsonb(clean), outcome, head["last_hash"], h,
         new_id, h))
    return new_id


def audit_rows(conn: Conn, *, run_id: int | None = None) -> list[Row]:
    if run_id is None:
        return conn.execute("SELECT * FROM audit_log ORDER BY id").fetchall()
    return conn.execute("SELECT * FROM audit_log WHERE run_id = %s ORDER BY id",
                        (run_id,)).fetchall()


def audit_head(conn: Conn) -> Row:
    """The chain head (``last_id``, ``last_hash``); exact inside the appending transaction."""
    row = conn.execute("SELECT last_id, last_hash FROM audit_head").fetchone()
    assert row is not None
    return row


def step_result_audit(conn: Conn, *, run_id: int, step_id: str, attempt: int) -> Row | None:
    """The audit row recording a step's result: its id and hash anchor the step's card."""
    return conn.execute(
        "SELECT id, hash FROM audit_log WHERE run_id = %s AND action = 'step.finished'"
        " AND detail->>'step' = %s AND detail->>'attempt' = %s ORDER BY id DESC LIMIT 1",
        (run_id, step_id, str(attempt))).fetchone()


def audit_owner_warning(conn: Conn) -> str | None:
    """Why this connection's role could rewrite the audit log unnoticed by the database (it owns
    audit_log, or is a superuser), or None when it is a plain runtime role."""
    row = conn.execute(
        "SELECT current_user AS me, r.rolsuper AS su,"
        " pg_has_role(current_user, c.relowner, 'USAGE') AS owns"
        " FROM pg_roles r, pg_class c WHERE r.rolname = current_user"
        " AND c.oid = to_regclass('audit_log')").fetchone()
    if row is None or not (row["su"] or row["owns"]):
        return None
    why = "a superuser" if row["su"] else "the owner of audit_log"
    return (f"connected as {row['me']}, {why}: it can disable the audit log's triggers; run "
            "the bot as the runtime role (DATABASE_URL) and migrate as the owner "
            "(GOLIVE_MIGRATIONS_DATABASE_URL)")


# --- runs ------------------------------------------------------------------------------------

def active_run(conn: Conn, *, for_update: bool = False) -> Row | None:
    sql = "SELECT * FROM runs WHERE status = 'active'"
    return conn.execute(sql + (" FOR UPDATE" if for_update else "")).fetchone()


def get_run(conn: Conn, *, run_id: int, for_update: bool = False) -> Row | None:
    sql = "SELECT * FROM runs WHERE id = %s" + (" FOR UPDATE" if for_update else "")
    return conn.execute(sql, (run_id,)).fetchone()


def latest_run(conn: Conn) -> Row | None:
    return conn.execute("SELECT * FROM runs ORDER BY id DESC LIMIT 1").fetchone()


def insert_run(conn: Conn, *, channel: str, rc_tag: str | None, rc_sha: str | None,
               started_by: str, now: datetime) -> Row:
    facts = {"rc_tag": rc_tag, "rc_sha": rc_sha} if rc_sha else {"rc_tag": rc_tag}
    row = conn.execute(
        "INSERT INTO runs (channel, rc_tag, rc_sha, started_by, started_at, facts)"
        " VALUES (%s,%s,%s,%s,%s,%s) RETURNING *",
        (channel, rc_tag, rc_sha, started_by, now, Jsonb(facts))).fetchone()
    assert row is not None
    return row


def merge_run_facts(conn: Conn, *, run_id: int, facts: Mapping[str, Any]) -> None:
    if facts:
        conn.execute("UPDATE runs SET facts = facts || %s WHERE id = %s",
                     (Jsonb(json.loads(json.dumps(dict(facts), default=str))), run_id))


def end_run(conn: Conn, *, run_id: int, status: str, now: datetime) -> None:
    conn.execute("UPDATE runs SET status = %s, ended_at = %s WHERE id = %s AND status = 'active'",
                 (status, now, run_id))


# --- step executions (read here; written only by bot/engine/executions.py) -------------------

def latest_executions(conn: Conn, *, run_id: int) -> dict[str, Row]:
    """The newest attempt of every step of a run that has been touched, by step id."""
    rows = conn.execute(
        "SELECT DISTINCT ON (step_id) * FROM step_executions WHERE run_id = %s"
        " ORDER BY step_id, attempt DESC", (run_id,)).fetchall()
    return {r["step_id"]: r for r in rows}


def succeeded_durations(conn: Conn, *, step_id: str | None = None) -> dict[str, list[float]]:
    """step id -> durations (s) of every recorded successful attempt, oldest first, in earlier
    runs and rehearsals alike: what a step's expected duration is the median of (the plan's
    estimate and the "overdue" notice read the same samples)."""
    rows = conn.execute(
        "SELECT step_id, EXTRACT(EPOCH FROM finished_at - started_at)::float8 AS s"
        " FROM step_executions WHERE state = 'succeeded' AND started_at IS NOT NULL"
        " AND finished_at IS NOT NULL AND (%(step)s::text IS NULL OR step_id = %(step)s)"
        " ORDER BY id", {"step": step_id}).fetchall()
    out: dict[str, list[float]] = {}
    for r in rows:
        out.setdefault(r["step_id"], []).append(float(r["s"]))
    return out


def decision(conn: Conn, execution_id: int, *, for_update: bool = False) -> Row | None:
    """The guided-failure decision on a step's execution (its owner, the choice taken), if any
    (written only by ``bot.engine.decisions``)."""
    sql = "SELECT * FROM decisions WHERE execution_id = %s" + (" FOR UPDATE" if for_update else "")
    return conn.execute(sql, (execution_id,)).fetchone()


def executions(conn: Conn, *, run_id: int) -> list[Row]:
    return conn.execute("SELECT * FROM step_executions WHERE run_id = %s ORDER BY id",
                        (run_id,)).fetchall()


def get_execution(conn: Conn, *, execution_id: int, for_update: bool = False) -> Row | None:
    sql = "SELECT * FROM step_executions WHERE id = %s" + (" FOR UPDATE" if for_update else "")
    return conn.execute(sql, (execution_id,)).fetchone()


def queued_candidates(conn: Conn, *, limit: int = 10) -> list[Row]:
    """Queued steps nobody else is claiming right now (row locks, SKIP LOCKED)."""
    return conn.execute(
        "SELECT * FROM step_executions WHERE state = 'queued' ORDER BY id"
        " LIMIT %s FOR UPDATE SKIP LOCKED", (limit,)).fetchall()


def has_steps_in(conn: Conn, states: tuple[str, ...]) -> bool:
    """Whether any step execution (any run) is in one of ``states``."""
    return conn.execute("SELECT EXISTS (SELECT 1 FROM step_executions WHERE state = ANY(%s))"
                        " AS any", (list(states),)).fetchone()["any"]


def executions_of_approval(conn: Conn, *, approval_id: int) -> list[Row]:
    return conn.execute("SELECT * FROM step_executions WHERE approval_id = %s ORDER BY id",
                        (approval_id,)).fetchall()


def running_executions(conn: Conn) -> list[Row]:
    return conn.execute("SELECT * FROM step_executions WHERE state = 'running'").fetchall()


def try_lock_execution(conn: Conn, *, execution_id: int) -> bool:
    """Session advisory lock held by the process running the step: if we can take it, the owner
    is gone (its connection died with it)."""
    row = conn.execute("SELECT pg_try_advisory_lock(%s, %s) AS ok",
                       (LOCK_NS, execution_id)).fetchone()
    return bool(row and row["ok"])


def unlock_execution(conn: Conn, *, execution_id: int) -> None:
    conn.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_NS, execution_id))


LOCK_NS = 0x601  # advisory lock namespace for running steps


def failure_since(conn: Conn, *, run_id: int, since: datetime) -> Row | None:
    """The first step of the run that failed or was interrupted after ``since``, if any."""
    return conn.execute(
        "SELECT * FROM step_executions WHERE run_id = %s AND state IN ('failed', 'interrupted')"
        " AND finished_at > %s ORDER BY finished_at LIMIT 1", (run_id, since)).fetchone()


def active_rollback(conn: Conn, *, run_id: int, step_ids: list[str]) -> Row | None:
    """A step of the rollback plan that is still awaiting approval, queued or running."""
    return conn.execute(
        "SELECT * FROM step_executions WHERE run_id = %s AND step_id = ANY(%s)"
        " AND state IN ('awaiting_approval', 'queued', 'running') LIMIT 1",
        (run_id, step_ids)).fetchone()


# --- approvals -------------------------------------------------------------------------------

def insert_approval(conn: Conn, *, run_id: int, step_id: str, action: str,
                    params: Mapping[str, Any], params_hash: str, requester: str, required: int,
                    groups: list[str], reason: str | None, channel: str, now: datetime,
                    expires_at: datetime, kind: str = "step") -> Row:
    row = conn.execute(
        "INSERT INTO approvals (run_id, step_id, action, params, params_hash, requester,"
        " required, groups, reason, channel, created_at, expires_at, kind)"
        " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) RETURNING *",
        (run_id, step_id, action, Jsonb(dict(params)), params_hash, requester, required,
         groups, reason, channel, now, expires_at, kind)).fetchone()
    assert row is not None
    return row


def get_approval(conn: Conn, *, approval_id: int, for_update: bool = False) -> Row | None:
    sql = "SELECT * FROM approvals WHERE id = %s" + (" FOR UPDATE" if for_update else "")
    return conn.execute(sql, (approval_id,)).fetchone()


def pending_approvals(conn: Conn, *, run_id: int | None = None) -> list[Row]:
    if run_id is None:
        return conn.execute("SELECT * FROM approvals WHERE status = 'pending' ORDER BY id"
                            ).fetchall()
    return conn.execute("SELECT * FROM approvals WHERE status = 'pending' AND run_id = %s"
                        " ORDER BY id", (run_id,)).fetchall()


def expired_pending(conn: Conn, *, now: datetime) -> list[Row]:
    return conn.execute("SELECT * FROM approvals WHERE status = 'pending' AND expires_at <= %s"
                        " ORDER BY id FOR UPDATE SKIP LOCKED", (now,)).fetchall()


def approval_votes(conn: Conn, *, approval_id: int) -> list[Row]:
    return conn.execute("SELECT * FROM approval_votes WHERE approval_id = %s ORDER BY at",
                        (approval_id,)).fetchall()


def votes_of_run(conn: Conn, *, run_id: int) -> dict[int, list[Row]]:
    """Every vote on the run's approvals, by approval id (one query for status)."""
    out: dict[int, list[Row]] = {}
    for v in conn.execute("SELECT v.* FROM approval_votes v JOIN approvals a ON a.id ="
                          " v.approval_id WHERE a.run_id = %s ORDER BY v.at", (run_id,)):
        out.setdefault(v["approval_id"], []).append(v)
    return out


def insert_vote(conn: Conn, *, approval_id: int, user_id: str, vote: str, now: datetime) -> bool:
    row = conn.execute(
        "INSERT INTO approval_votes (approval_id, user_id, vote, at) VALUES (%s,%s,%s,%s)"
        " ON CONFLICT DO NOTHING RETURNING user_id",
        (approval_id, user_id, vote, now)).fetchone()
    return row is not None


def decide_approval(conn: Conn, *, approval_id: int, status: str, now: datetime,
                    decided_by: str | None, note: str | None = None) -> Row | None:
    return conn.execute(
        "UPDATE approvals SET status = %s, decided_at = %s, decided_by = %s, decision_note = %s"
        " WHERE id = %s AND status = 'pending' RETURNING *",
        (status, now, decided_by, note, approval_id)).fetchone()


def approvals_of_run(conn: Conn, *, run_id: int) -> list[Row]:
    return conn.execute("SELECT * FROM approvals WHERE run_id = %s ORDER BY id",
                        (run_id,)).fetchall()


# --- inbox (every verified request, before its ack) ------------------------------------------

def inbox_insert(conn: Conn, *, sig_key: str, kind: str, channel: str | None, body: bytes,
                 owner: str, purge_older_than_s: float | None = None,
                 request: str | None = None) -> int | None:
    """Record a verified request (``request``: its parsed form, JSON); None when its
    signature was seen before (a replay)."""
    if purge_older_than_s is not None:
        conn.execute("DELETE FROM inbox WHERE state <> 'new' AND received_at < now() -"
                     " make_interval(secs => %s)", (purge_older_than_s,))
    # One round trip: the row, and the handlers' wake-up (delivered when it commits).
    row = conn.execute("WITH ins AS (INSERT INTO inbox (sig_key, kind, channel, body, owner,"
                       " request) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (sig_key)"
                       " DO NOTHING RETURNING id) SELECT id, pg_notify('golive_inbox', '')"
                       " FROM ins", (sig_key, kind, channel, body, owner, request)).fetchone()
    return row["id"] if row else None
