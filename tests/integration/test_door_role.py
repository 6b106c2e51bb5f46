"""Only the door writes an inbox row (docs/THREAT_MODEL.md): the work side trusts a row without
checking its signature again, so the role it runs as (the runtime role) may not write one;
the door records requests as the door role (GOLIVE_DOOR_DATABASE_URL), which may.

The HTTP and Socket Mode request paths run with the two roles in every test through
tests/support/harness.bot_environ (tests/reliability's ``spawn_over`` runs both transports).
"""

from __future__ import annotations

import psycopg
import pytest

from bot.dev.sandbox import SandboxServer, Workspace
from bot.store import repo
from tests.support.cli import golive
from tests.support.harness import BASE_CONFIG, BOT_TOKEN, SIGNING_SECRET, bot_environ

INSERT = ("INSERT INTO inbox (sig_key, kind, channel, body, owner)"
          " VALUES ('forged', 'command', 'C_CUTOVER', 'command=/golive&text=start', '')")


def test_the_runtime_role_cannot_write_an_inbox_row(runtime_db, clean_db):
    with psycopg.connect(runtime_db) as conn, pytest.raises(
            psycopg.errors.InsufficientPrivilege, match="permission denied"):
        conn.execute(INSERT)
    with psycopg.connect(clean_db) as conn:
        assert conn.execute("SELECT count(*) FROM inbox").fetchone()[0] == 0


def test_the_door_role_records_a_request_and_the_runtime_role_claims_it(door_db, runtime_db):
    from psycopg.rows import dict_row

    with psycopg.connect(door_db, autocommit=True, row_factory=dict_row) as conn:
        first = repo.inbox_insert(conn, sig_key="k1", kind="command", channel="C_CUTOVER",
                                  body=b"command=/golive&text=status", owner="",
                                  purge_older_than_s=600)  # the door's purge, too
        again = repo.inbox_insert(conn, sig_key="k1", kind="command", channel="C_CUTOVER",
                                  body=b"command=/golive&text=status", owner="")
    assert isinstance(first, int) and again is None, "a replayed key must not record twice"
    with psycopg.connect(runtime_db, autocommit=True) as conn:  # the work side's half
        conn.execute("UPDATE inbox SET state = 'done' WHERE id = %s", (first,))
        assert conn.execute("SELECT state FROM inbox WHERE id = %s",
                            (first,)).fetchone()[0] == "done"


def test_a_command_over_http_is_recorded_by_the_door_role(bot, clean_db):
    bot.command("alice", "status")
    with psycopg.connect(clean_db) as conn:
        kinds = conn.execute("SELECT kind FROM inbox").fetchall()
    assert kinds == [("command",)], "the door recorded nothing"
    assert bot.runtime.door_db is not None, "the harness's bot runs one role"


@pytest.fixture
def sandbox():
    s = SandboxServer(Workspace.default_demo(), signing_secret=SIGNING_SECRET,
                      bot_token=BOT_TOKEN).start()
    yield s
    s.stop()


def test_config_check_says_when_the_doors_role_may_not_write_the_inbox(
        sandbox, clean_db, tmp_path, toy):
    environ = bot_environ(sandbox, clean_db, tmp_path, BASE_CONFIG + toy.config(), None)
    del environ["GOLIVE_DOOR_DATABASE_URL"]  # the door would record as the runtime role
    r = golive("config", "check", url=None, key=None, env=environ)
    assert "Traceback" not in r.stderr, r.stderr
    red = [line for line in r.stdout.splitlines() if line.startswith("❌")]
    assert r.returncode != 0 and len(red) == 1, r.stdout
    assert "may not write the inbox" in red[0] and "GOLIVE_DOOR_DATABASE_URL" in red[0], red

    environ = bot_environ(sandbox, clean_db, tmp_path, BASE_CONFIG + toy.config(), None)
    r = golive("config", "check", url=None, key=None, env=environ)
    assert "may write the inbox" in r.stdout and r.returncode == 0, r.stdout


def test_an_owner_that_may_not_create_the_door_role_is_told_to_create_it_first():
    import uuid

    from tests.support import pg

    suffix = uuid.uuid4().hex[:8]
    owner, runtime, name = f"golive_own_{suffix}", f"golive_rt_{suffix}", f"golive_nd_{suffix}"
    with psycopg.connect(pg.ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{owner}" LOGIN')  # no CREATEROLE, as in production
        conn.execute(f'CREATE ROLE "{runtime}" LOGIN')
        conn.execute(f'CREATE DATABASE "{name}" OWNER "{owner}"')
    try:
        owner_url = pg.as_role(pg.db_url(name), owner)
        r = golive("db", "upgrade", url=pg.as_role(pg.db_url(name), runtime), env={
            "GOLIVE_MIGRATIONS_DATABASE_URL": owner_url, "GOLIVE_RUNTIME_ROLE": runtime,
            "GOLIVE_DOOR_ROLE": f"golive_door_{suffix}"})
        assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
        assert f"create it first (CREATE ROLE golive_door_{suffix} LOGIN" in r.stderr, r.stderr
    finally:
        pg.drop_database(name)
        with psycopg.connect(pg.ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP ROLE IF EXISTS "{runtime}"')
            conn.execute(f'DROP ROLE IF EXISTS "{owner}"')
