"""The audit chain's head is locked last: while a transaction that recorded audit rows is still
doing its other work, another transaction can append to the chain; the rows are appended just
before the commit, in order, and a rolled-back transaction or savepoint leaves none."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest

from bot.engine.audit_trail import AuditTrail
from bot.store.db import Database

T0 = datetime(2026, 12, 7, 22, 0, tzinfo=UTC)


@pytest.fixture
def db(runtime_db):
    d = Database(runtime_db)
    d.open(wait=True)
    yield d
    d.close()


def _trail(db: Database) -> AuditTrail:
    return AuditTrail(db=db, key=b"k" * 32, now=lambda: T0, mask=lambda v: v)


def _head_free(url: str) -> bool:
    """Whether another session can take the chain head's lock right now."""
    with psycopg.connect(url) as other:
        try:
            other.execute("SET lock_timeout = '200ms'")
            other.execute("SELECT last_id FROM audit_head FOR UPDATE")
            return True
        except psycopg.errors.LockNotAvailable:
            return False


def _actions(url: str) -> list[str]:
    with psycopg.connect(url) as c:
        return [r[0] for r in c.execute("SELECT action FROM audit_log ORDER BY id")]


def test_the_head_is_free_until_the_transaction_commits(db, runtime_db):
    trail = _trail(db)
    with db.transaction() as conn:
        trail.record(conn, actor="U1", action="first", outcome="ok")
        conn.execute("SELECT 1")  # the rest of the request's work
        trail.record(conn, actor="U1", action="second", outcome="ok")
        assert _head_free(runtime_db), "the audit head was locked before the commit"
    assert _actions(runtime_db) == ["first", "second"]


def test_a_request_inside_the_inbox_transaction_locks_the_head_last(db, runtime_db):
    trail = _trail(db)
    with db.transaction() as outer, db.ambient(outer):
        outer.execute("SELECT 1")  # the inbox row's lock: the request's transaction is open
        with db.transaction() as conn:  # the engine's call joins the request's transaction
            trail.record(conn, actor="U1", action="kept", outcome="ok")
        with pytest.raises(RuntimeError), db.transaction() as conn:
            trail.record(conn, actor="U1", action="rolled-back", outcome="ok")
            raise RuntimeError("refused")
        assert _head_free(runtime_db)
    assert _actions(runtime_db) == ["kept"]


def test_flush_appends_now_for_a_caller_that_reads_the_head(db, runtime_db):
    trail = _trail(db)
    with db.transaction() as conn:
        trail.record(conn, actor="U1", action="finish", outcome="ok")
        trail.flush(conn)
        head = conn.execute("SELECT last_id FROM audit_head").fetchone()
        assert head["last_id"] == 1
    with pytest.raises(RuntimeError), db.transaction() as conn:
        trail.record(conn, actor="U1", action="never", outcome="ok")
        raise RuntimeError("rolled back")
    assert _actions(runtime_db) == ["finish"]
