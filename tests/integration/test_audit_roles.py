"""Two database roles (owner migrates, runtime serves) and appends under concurrency: the bot's
own role cannot rewrite the audit log, and concurrent appends never lose a state change."""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg.rows import dict_row

from bot import audit
from bot.store import repo
from tests.support import pg
from tests.support.cli import golive

KEY = pg.TEST_AUDIT_KEY.encode()
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def chain_of(url: str) -> list[audit.AuditRow]:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        return [audit.AuditRow(**{k: r[k] for k in ("id", "at", "run_id", "actor", "channel",
                                                    "action", "detail", "outcome",
                                                    "prev_hash", "hash")})
                for r in repo.audit_rows(conn)]


@pytest.mark.parametrize("statement", [
    "UPDATE audit_log SET outcome = 'forged'",
    "DELETE FROM audit_log",
    "TRUNCATE audit_log",
    "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only",
])
def test_the_bots_role_can_append_to_the_audit_log_and_nothing_more(bot, runtime_db, statement):
    bot.command("alice", "start v2")  # the bot, as the runtime role, appends and updates state
    assert len(chain_of(runtime_db)) >= 2, "the runtime role must be able to append and read"
    with psycopg.connect(runtime_db) as conn, pytest.raises(
            psycopg.errors.InsufficientPrivilege):
        conn.execute(statement)


def test_verify_and_serve_warn_when_running_as_a_role_that_can_rewrite_the_log(
        bot, clean_db, runtime_db, caplog):
    from bot.settings import load_settings
    from bot.startup import warn_about_audit

    bot.command("alice", "status")
    as_owner = golive("audit", "verify", url=clean_db)
    assert as_owner.returncode == 0, as_owner.stdout + as_owner.stderr
    assert "warning" in as_owner.stderr and "superuser" in as_owner.stderr, as_owner.stderr
    as_runtime = golive("audit", "verify", url=runtime_db)
    assert as_runtime.returncode == 0 and "warning" not in as_runtime.stderr, as_runtime.stderr

    def serve_warnings(url: str) -> list[str]:
        caplog.clear()
        environ = {**bot.environ, "DATABASE_URL": url}
        with caplog.at_level(logging.WARNING, logger="golive.audit"):
            warn_about_audit(load_settings(environ=environ))
        return [r.getMessage() for r in caplog.records if r.name == "golive.audit"]

    assert any("GOLIVE_MIGRATIONS_DATABASE_URL" in w for w in serve_warnings(clean_db))
    assert serve_warnings(runtime_db) == [], "the runtime role is what the bot should run as"


@pytest.fixture
def two_role_db():
    """A database owned by a plain (non-superuser) owner role, a runtime role and a door role:
    the documented production setup, created the way an operator (or CI) would."""
    suffix = uuid.uuid4().hex[:8]
    owner, runtime, name = f"golive_own_{suffix}", f"golive_rt_{suffix}", f"golive_2r_{suffix}"
    door = f"golive_door_{suffix}"
    with psycopg.connect(pg.ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{owner}" LOGIN')
        conn.execute(f'CREATE ROLE "{runtime}" LOGIN')
        conn.execute(f'CREATE ROLE "{door}" LOGIN')
        conn.execute(f'CREATE DATABASE "{name}" OWNER "{owner}"')
    url = pg.db_url(name)
    yield pg.as_role(url, owner), pg.as_role(url, runtime), runtime, door
    pg.drop_database(name)
    with psycopg.connect(pg.ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP ROLE IF EXISTS "{door}"')
        conn.execute(f'DROP ROLE IF EXISTS "{runtime}"')
        conn.execute(f'DROP ROLE IF EXISTS "{owner}"')


def test_two_roles_migrate_as_owner_and_the_runtime_role_cannot_rewrite(two_role_db):
    owner_url, runtime_url, runtime, door = two_role_db
    env = {"GOLIVE_MIGRATIONS_DATABASE_URL": owner_url, "GOLIVE_RUNTIME_ROLE": runtime,
           "GOLIVE_DOOR_ROLE": door}
    r = golive("db", "upgrade", url=runtime_url, env=env)
    assert r.returncode == 0, r.stderr
    with psycopg.connect(runtime_url, row_factory=dict_row) as conn:
        repo.append_audit(conn, key=KEY, now=NOW, actor="U1", action="command", outcome="ok")
        assert repo.audit_owner_warning(conn) is None
    with psycopg.connect(runtime_url) as conn, pytest.raises(
            psycopg.errors.InsufficientPrivilege):
        conn.execute("DELETE FROM audit_log")
    with psycopg.connect(owner_url) as conn, pytest.raises(psycopg.errors.RaiseException,
                                                           match="TRUNCATE refused"):
        conn.execute("TRUNCATE audit_log")
    r = golive("audit", "verify", url=runtime_url)
    assert r.returncode == 0 and "1 rows" in r.stdout and not r.stderr, r.stdout + r.stderr


def append_with_a_state_change(url: str, who: str) -> None:
    """One transaction: a state change (a run) and the audit row that records it."""
    with psycopg.connect(url, row_factory=dict_row) as conn:
        run = conn.execute("INSERT INTO runs (channel, started_by, status) VALUES"
                           " ('C1', %s, 'completed') RETURNING id", (who,)).fetchone()
        repo.append_audit(conn, key=KEY, now=NOW, actor=who, action="run.start",
                          outcome="ok", run_id=run["id"])
        conn.commit()


def waiting_on_a_lock(url: str, application_name: str, deadline: float) -> bool:
    """Whether the connection named ``application_name`` is blocked on a lock (polled)."""
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT wait_event_type FROM pg_stat_activity"
                               " WHERE application_name = %s", (application_name,)).fetchone()
            if row and row[0] == "Lock":
                return True
            threading.Event().wait(0.01)  # polling the server's view, not timing the race
    return False


def test_concurrent_appends_both_commit_with_gapless_ids(clean_db, runtime_db):
    """Writer A holds its append open until writer B is blocked behind it, so both read the
    chain head in the same state unless the head is locked (FOR UPDATE): without the lock B
    picks A's id and its whole transaction, state change included, rolls back."""
    errors: list[BaseException] = []
    name_b = f"golive-writer-b-{uuid.uuid4().hex[:6]}"
    with psycopg.connect(runtime_db, row_factory=dict_row) as a:
        a.execute("INSERT INTO runs (channel, started_by, status) VALUES ('C1', 'UA',"
                  " 'completed')")
        repo.append_audit(a, key=KEY, now=NOW, actor="UA", action="run.start", outcome="ok")

        def writer_b() -> None:
            try:
                append_with_a_state_change(f"{runtime_db}?application_name={name_b}", "UB")
            except BaseException as e:  # noqa: BLE001 - reported by the test below
                errors.append(e)

        b = threading.Thread(target=writer_b)
        b.start()
        blocked = waiting_on_a_lock(clean_db, name_b, time.monotonic() + 10)
        a.commit()
    b.join(10)
    assert blocked, "writer B never waited for writer A: the appends did not overlap"
    assert not errors, f"the second concurrent append failed: {errors[0]!r}"
    rows = chain_of(clean_db)
    assert [r.id for r in rows] == [1, 2], "ids must be gapless"
    assert audit.verify_chain(rows, key=KEY) == []
    with psycopg.connect(clean_db) as conn:
        runs = {r[0] for r in conn.execute("SELECT started_by FROM runs")}
    assert runs == {"UA", "UB"}, "both state changes must have committed"


def test_every_text_leaves_an_audit_row_even_what_postgres_cannot_store(runtime_db):
    rng = random.Random(7)
    alphabet = ["\x00", "\ud800", "\udfff", "é", "💥", "\\", "u0000", "a", " ", "\n", '"', "'"]
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))
             for _ in range(300)]
    with psycopg.connect(runtime_db, row_factory=dict_row) as conn:
        for t in texts:
            with conn.transaction():
                repo.append_audit(conn, key=KEY, now=NOW, actor=f"U{t}", action="command",
                                  outcome="ok", detail={"text": t, t: 1})
    rows = chain_of(runtime_db)
    assert len(rows) == len(texts), f"only {len(rows)} of {len(texts)} texts left a row"
    assert audit.verify_chain(rows, key=KEY) == []
    nul = next(r for r, t in zip(rows, texts, strict=True) if "\x00" in t)
    assert "\\u0000" in nul.detail["text"], nul.detail
