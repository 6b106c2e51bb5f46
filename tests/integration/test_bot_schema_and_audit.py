"""The bot's own schema (alembic up and down) and the audit chain's tamper evidence, via the CLI,
against someone who can write the database but does not hold the audit key."""

from __future__ import annotations

import hashlib
import json

import psycopg
import pytest

from bot import audit
from bot.store import db
from tests.support import pg
from tests.support.cli import golive

KEY = pg.TEST_AUDIT_KEY.encode()


@pytest.fixture
def empty_db():
    name, url = pg.create_database("golive_schema")
    yield url
    pg.drop_database(name)


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


def as_superuser(url: str, *statements: str, params=None) -> None:
    """What a database superuser can do: replica mode skips the audit log's triggers."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        for sql in statements:
            conn.execute(sql, params)


def rewrite_chain(url: str, *, scheme: str, actor_of_row_2: str = "U_MALLORY") -> None:
    """Edit row 2 and recompute every hash (and the head) so the chain is consistent again:
    with plain SHA-256 (the old scheme) or with a guessed key."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        rows = conn.execute("SELECT id, at, run_id, actor, channel, action, detail, outcome"
                            " FROM audit_log ORDER BY id").fetchall()
        prev = audit.GENESIS
        for rid, at, run_id, actor, channel, action, detail, outcome in rows:
            actor = actor_of_row_2 if rid == 2 else actor
            if scheme == "plain-sha256":
                body = hashlib.sha256(audit.canonical_json({
                    "at": audit.format_at(at), "actor": actor, "channel": channel,
                    "action": action, "detail": detail, "outcome": outcome}).encode()).hexdigest()
                h = hashlib.sha256(audit.canonical_json({
                    "v": 1, "id": rid, "run_id": run_id, "prev_hash": prev,
                    "body": body}).encode()).hexdigest()
            else:
                h = audit.row_hash(prev, key=b"a-guessed-key", id=rid, at=at, run_id=run_id,
                                   actor=actor, channel=channel, action=action, detail=detail,
                                   outcome=outcome)
            conn.execute("UPDATE audit_log SET actor = %s, prev_hash = %s, hash = %s"
                         " WHERE id = %s", (actor, prev, h, rid))
            prev = h
        conn.execute("UPDATE audit_head SET last_hash = %s", (prev,))


def test_migrations_upgrade_and_downgrade_cleanly(empty_db):
    r = golive("db", "current", url=empty_db)
    assert r.returncode == 0 and "base (empty)" in r.stdout, r.stderr
    r = golive("db", "upgrade", url=empty_db)
    assert r.returncode == 0, r.stderr
    assert f"at {db.head_revision()}" in r.stdout
    assert {"runs", "step_executions", "approvals", "approval_votes", "audit_log",
            "audit_head"} <= tables(empty_db)
    r = golive("db", "downgrade", "base", url=empty_db)
    assert r.returncode == 0, r.stderr
    assert tables(empty_db) == {"alembic_version"}
    assert golive("db", "upgrade", url=empty_db).returncode == 0, "upgrade after downgrade"


def test_db_commands_report_an_outage_in_one_line():
    r = golive("db", "current", url="postgresql://postgres@127.0.0.1:1/nothing")
    assert r.returncode == 1
    assert r.stderr.startswith("golive: database error:") and "Traceback" not in r.stderr


def test_audit_log_is_append_only_in_the_database(bot, clean_db):
    bot.command("alice", "status")
    with psycopg.connect(clean_db) as conn, pytest.raises(psycopg.errors.RaiseException,
                                                          match="append-only"):
        conn.execute("UPDATE audit_log SET outcome = 'forged'")


def test_truncate_is_refused_even_for_the_tables_owner(bot, clean_db):
    bot.command("alice", "status")
    with psycopg.connect(clean_db) as conn, pytest.raises(
            psycopg.errors.RaiseException, match=r"append-only \(TRUNCATE refused\)"):
        conn.execute("TRUNCATE audit_log")
    with psycopg.connect(clean_db) as conn:
        assert conn.execute("SELECT count(*) FROM audit_log").fetchone()[0] >= 1, \
            "the audit rows must survive a TRUNCATE"


def test_verify_needs_the_key_and_names_it_by_id(bot, clean_db):
    bot.command("alice", "status")
    r = golive("audit", "verify", url=clean_db, key=None)
    assert r.returncode == 2 and "GOLIVE_AUDIT_KEY is not set" in r.stderr, r.stderr
    r = golive("audit", "verify", url=clean_db)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"under key {audit.key_id(KEY)}" in r.stdout, r.stdout
    assert pg.TEST_AUDIT_KEY not in r.stdout + r.stderr, "the key itself must never be shown"
    other = "another-audit-key-of-32-characters-or-more"
    r = golive("audit", "verify", url=clean_db, key=other)
    assert r.returncode == 1 and f"under key {audit.key_id(other.encode())}" in r.stdout, \
        r.stdout


def test_audit_verify_detects_edits_and_deletions_and_exports_verify_offline(
        bot, clean_db, tmp_path):
    bot.command("alice", "start v2")
    bot.command("bob", "status")
    bot.command("carol", "nonsense")
    bot.command("alice", "status")
    r = golive("audit", "verify", url=clean_db)
    assert r.returncode == 0 and "verifies" in r.stdout, r.stdout + r.stderr

    out = tmp_path / "run1.jsonl"
    r = golive("audit", "export", "--run", "1", "--out", str(out), url=clean_db)
    assert r.returncode == 0, r.stderr
    r = golive("audit", "verify", "--file", str(out), url=None)
    assert r.returncode == 0 and "export verifies" in r.stdout, r.stdout + r.stderr
    forged = out.read_text().replace('"status"', '"deploy v9"', 1)
    assert forged != out.read_text()
    (tmp_path / "forged.jsonl").write_text(forged)
    r = golive("audit", "verify", "--file", str(tmp_path / "forged.jsonl"), url=None)
    assert r.returncode == 1, r.stdout

    as_superuser(clean_db, "UPDATE audit_log SET actor = 'U_MALLORY' WHERE id = 2")
    r = golive("audit", "verify", url=clean_db)
    assert r.returncode == 1 and "row 2" in r.stdout, r.stdout

    as_superuser(clean_db, "TRUNCATE audit_log",
                 "UPDATE audit_head SET last_id = 0, last_hash = repeat('0', 64)")
    for text in ("status", "help", "status"):
        bot.command("alice", text)
    as_superuser(clean_db, "DELETE FROM audit_log WHERE id = 2")
    r = golive("audit", "verify", url=clean_db)
    assert r.returncode == 1 and "row 2 missing" in r.stdout, r.stdout


def test_export_carries_the_key_id_and_never_the_key(bot, clean_db, tmp_path):
    bot.command("alice", "start v2")
    bot.command("bob", "status")
    out = tmp_path / "run1.jsonl"
    r = golive("audit", "export", "--run", "1", "--out", str(out), url=clean_db)
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert json.loads(text.splitlines()[0])["key_id"] == audit.key_id(KEY)
    assert pg.TEST_AUDIT_KEY not in text and KEY.hex() not in text, "the key leaked"
    r = golive("audit", "verify", "--file", str(out), url=None,
               key="another-audit-key-of-32-characters-or-more")
    assert r.returncode == 1 and f"chained under key {audit.key_id(KEY)}" in r.stdout, r.stdout


@pytest.mark.parametrize("scheme", ["plain-sha256", "guessed-key"])
def test_a_consistently_rewritten_chain_fails_verify_without_the_key(bot, clean_db, scheme):
    bot.command("alice", "start v2")
    bot.command("bob", "status")
    bot.command("alice", "status")
    rewrite_chain(clean_db, scheme=scheme)
    with psycopg.connect(clean_db) as conn:
        assert conn.execute("SELECT actor FROM audit_log WHERE id = 2").fetchone()[0] \
            == "U_MALLORY", "the rewrite must have happened"
    r = golive("audit", "verify", url=clean_db)
    assert r.returncode == 1, f"a {scheme} rewrite verified: {r.stdout}"
    expected = ("hashed without the audit key" if scheme == "plain-sha256"
                else f"does not match its content under key {audit.key_id(KEY)}")
    assert expected in r.stdout, r.stdout


def test_serve_refuses_an_unmigrated_database_and_names_the_fix(empty_db, tmp_path):
    cfg = tmp_path / "golive.toml"
    cfg.write_text('[channels]\ncutover = "C0X"\n[approvers]\nusers = ["U0B"]\n')
    r = golive("serve", "--port", "1", url=empty_db,
               env={"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s",
                    "GOLIVE_CONFIG": str(cfg)})
    assert r.returncode == 2, r.stderr
    assert "schema is at nothing (empty database)" in r.stderr
    assert "golive db upgrade" in r.stderr and "Traceback" not in r.stderr


def test_serve_in_production_refuses_to_start_without_the_audit_key(tmp_path):
    cfg = tmp_path / "golive.toml"
    cfg.write_text('[channels]\ncutover = "C0X"\n[approvers]\nusers = ["U0B"]\n')
    r = golive("serve", "--port", "1", url="postgresql://u@127.0.0.1:1/x", key=None,
               env={"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s",
                    "GOLIVE_CONFIG": str(cfg)})
    assert r.returncode == 2 and "GOLIVE_AUDIT_KEY is not set" in r.stderr, r.stderr
