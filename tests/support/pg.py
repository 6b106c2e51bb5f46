"""A throwaway PostgreSQL database per test session, on the server CI provides.

Three roles, as in production: the database's owner (the admin URL's user) runs migrations
and the helpers that poke the database directly; the bot connects as a runtime role that the
migrations grant only what the bot needs, and its door as a door role, the only one that may
write an inbox row. The roles and every database are unique per test process (and name its
pytest-xdist worker) because several test sessions and workers share one server.
"""

from __future__ import annotations

import os
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.rows import dict_row

ADMIN_URL = os.environ.get("GOLIVE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")  # gw0, gw1... under pytest-xdist
_SUFFIX = f"{WORKER}_{uuid.uuid4().hex[:10]}"
RUNTIME_ROLE = f"golive_rt_{_SUFFIX}"
DOOR_ROLE = f"golive_door_{_SUFFIX}"
TEST_AUDIT_KEY = "golive-test-audit-key-not-secret-0123456789"
_created: set[str] = set()


def _ensure(role: str) -> str:
    """Create ``role`` for this process (LOGIN, no password: the test server trusts loopback)."""
    if role not in _created:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE ROLE "{role}" LOGIN')
        _created.add(role)
    return role


def ensure_runtime_role() -> str:
    """This process's runtime role: what the bot's work side runs as."""
    return _ensure(RUNTIME_ROLE)


def ensure_door_role() -> str:
    """This process's door role: the only one that may write an inbox row."""
    return _ensure(DOOR_ROLE)


def drop_runtime_role() -> None:
    """Drop the runtime and door roles once the databases granting them are gone (best
    effort)."""
    for role in sorted(_created):
        try:
            with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'DROP ROLE IF EXISTS "{role}"')
            _created.discard(role)
        except psycopg.Error:
            pass  # still granted in a database someone keeps: the role stays, harmless


def upgrade(url: str) -> None:
    """The bot's schema at head in the database at ``url`` (the owner's), granting this
    process's runtime and door roles."""
    from bot.store import db

    db.upgrade(url, runtime_role=ensure_runtime_role(), door_role=ensure_door_role())


def as_role(url: str, role: str) -> str:
    """``url`` with its user (and password) replaced by ``role``."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{role}@{host}"))


def runtime_url(url: str) -> str:
    """The same database as the bot's runtime role sees it."""
    return as_role(url, ensure_runtime_role())


def door_url(url: str) -> str:
    """The same database as the bot's door role sees it."""
    return as_role(url, ensure_door_role())


def db_url(name: str) -> str:
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


def create_database(prefix: str = "golive_test") -> tuple[str, str]:
    name = f"{prefix}_{WORKER}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, db_url(name)


def drop_database(name: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _end_leftovers(conn: psycopg.Connection) -> None:
    """A bot an earlier test left running on this database (a process that outlived its
    test, a thread that was never stopped) would claim the next test's requests: end its
    connections, kill it if it is a process of its own, and say so (a warning in the run's
    summary names it, so the leak gets fixed rather than hidden)."""
    import signal
    import warnings

    got = conn.execute(
        "SELECT pid, application_name FROM pg_stat_activity WHERE datname = current_database()"
        " AND pid <> pg_backend_pid() AND application_name LIKE 'golive[%'").fetchall()
    if not got:
        return
    owners = sorted({int(name[len("golive["):-1]) for _, name in got if name.endswith("]")
                     and name[len("golive["):-1].isdigit()})
    alive = [pid for pid in owners if pid == os.getpid() or _alive(pid)]
    for pid in alive:
        if pid != os.getpid():
            try:  # its group (its step children too), unless it shares ours
                group = os.getpgid(pid)
                if group != os.getpgid(0):
                    os.killpg(group, signal.SIGKILL)
                else:
                    os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname ="
                 " current_database() AND pid <> pg_backend_pid() AND application_name LIKE"
                 " 'golive[%'")
    if alive:  # a killed process's backends linger a moment: ended, nothing to report
        warnings.warn(f"a bot left running by an earlier test held {len(got)} connection(s)"
                      f" to this test's database (processes {alive}; {os.getpid()} is this"
                      " test process): ended", stacklevel=3)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reset_state(url: str) -> None:
    """Empty the bot's tables between tests, as the superuser: replica mode skips the audit
    log's triggers (TRUNCATE refused, rows append-only) for this connection only."""
    with psycopg.connect(url, autocommit=True) as conn:
        _end_leftovers(conn)
        conn.execute("SET session_replication_role = replica")
        conn.execute("TRUNCATE audit_log, approval_votes, step_executions, approvals, runs"
                     " RESTART IDENTITY CASCADE")
        for table in ("outbox", "inbox"):  # not tied to runs: emptied on their own
            if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0]:
                conn.execute(f"TRUNCATE {table} RESTART IDENTITY")
        conn.execute("UPDATE audit_head SET last_id = 0, last_hash = repeat('0', 64)")


def rows(db: str, sql: str, *args: Any) -> list[dict]:
    """The rows of ``sql`` (with positional ``args``) as dicts, on a fresh autocommit connection."""
    with psycopg.connect(db, row_factory=dict_row, autocommit=True) as conn:
        return conn.execute(sql, args).fetchall()


def wait_for_rows(url: str, sql: str, params=None, *, timeout: float = 10.0) -> list[tuple]:
    """Poll ``sql`` until it returns rows (work the bot finishes after it has answered, e.g. a
    command's audit row written by the lazy listener); AssertionError names the query."""
    import threading
    import time

    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            rows = conn.execute(sql, params).fetchall()
            if rows or time.monotonic() > deadline:
                break
            threading.Event().wait(0.02)  # the database has no change notification to wait on
    assert rows, f"no rows after {timeout}s for: {sql}"
    return rows
