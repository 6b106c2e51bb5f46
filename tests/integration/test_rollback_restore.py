"""rollback.data strategy restore: the backup drill's real snapshot restored over real PostgreSQL."""

from __future__ import annotations

import secrets as pysecrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from runbook.adapters.migrations import AlembicApiMigrator
from runbook.checks import backup_drill
from runbook.checks.base import CheckContext, Status
from runbook.checks.sections.backup_drill import BackupDrillConfig
from runbook.steps.base import StepContext, StepFailed, StepResult
from runbook.steps.rollback import data
from runbook.target import Migrations, TargetConfig
from tests.support.paybox_env import PAYBOX, PG_ADMIN_URL

SCRIPTS = PAYBOX / "app" / "migrations"


@dataclass
class Ledger:
    url: str
    password: str
    snapshot_dir: Path

    def rows(self, sql: str) -> list[tuple]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            return conn.execute(sql).fetchall()

    def run(self, sql: str) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql)

    def migrate(self, rev: str) -> None:
        AlembicApiMigrator(Migrations(mode="alembic-api", script_location=SCRIPTS),
                           self.url, {}).upgrade(rev)

    def revision(self) -> str | None:
        return self.rows("SELECT version_num FROM alembic_version")[0][0]

    def accounts(self) -> list[tuple]:
        return self.rows("SELECT id, available_cents, held_cents FROM accounts ORDER BY id")


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    """A paybox ledger at 0001 owned by its own password role, with a few payments in it."""
    suffix = pysecrets.token_hex(4)
    name, password = f"golive_restore_{suffix}", "pw-" + pysecrets.token_hex(8)
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE \"{name}\" LOGIN PASSWORD '{password}'")
        conn.execute(f'CREATE DATABASE "{name}" OWNER "{name}"')
    db = Ledger(f"postgresql://{name}:{password}@127.0.0.1:5432/{name}", password,
                tmp_path / "snapshots")
    try:
        db.migrate("0001_ledger")
        db.run("INSERT INTO accounts (id, available_cents, held_cents) VALUES"
               " ('acct-a', 5000, 0), ('acct-b', 700, 0);"
               "INSERT INTO payouts (account_id, amount_cents, status) VALUES"
               " ('acct-a', 1000, 'settled');"
               "INSERT INTO transactions (account_id, kind, amount_cents, reference, payout_id)"
               " VALUES ('acct-a', 'deposit', 6000, 'dep-1', NULL),"
               " ('acct-a', 'payout', -1000, NULL, 1), ('acct-b', 'deposit', 700, 'dep-2', NULL)")
        yield db
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'DROP ROLE IF EXISTS "{name}"')


def take_snapshot(db: Ledger) -> dict:
    """Run the real backup drill and return the facts it records for the run."""
    cfg = BackupDrillConfig(database_url=db.url, scratch_url=PG_ADMIN_URL,
                            snapshot_dir=db.snapshot_dir)
    result = backup_drill.run(CheckContext(name="backup_drill", config=cfg, rc_tag="v2",
                                           deadline=time.monotonic() + 120))
    assert result.status is Status.OK, f"backup drill failed: {result.finding}"
    return dict(result.facts)


def restore(db: Ledger, facts: dict, *, expect_failure: bool = False
            ) -> tuple[StepResult | None, str, list[str]]:
    """Run rollback.data with strategy restore, as the engine would."""
    target = TargetConfig.model_validate({"migrations": {
        "mode": "alembic-api", "script_location": str(SCRIPTS), "database_url": db.url}})
    lines: list[str] = []
    ctx = StepContext(run_id=7, step_id="rb-restore-or-downgrade",
                      params={"strategy": "restore"}, facts=facts, target=target,
                      progress=lines.append, deadline=time.monotonic() + 120,
                      secrets=target.secrets())
    try:
        result, error = data(ctx), ""
    except StepFailed as e:
        result, error = None, e.message
    said = lines + [error] + ([result.summary, result.detail, str(result.facts)] if result else [])
    leaked = [t for t in said if db.password in t]
    assert not leaked, f"the database password leaked into step output: {leaked[:1]}"
    if expect_failure:
        assert result is None, f"the restore should have been refused; it said {result}"
    else:
        assert result is not None, f"the restore failed: {error}\n" + "\n".join(lines[-10:])
    return result, error, lines


def change_after_snapshot(db: Ledger) -> None:
    """What a v2 cutover does after the snapshot: migrate 0002, take payments, add a table."""
    db.migrate("0002_payout_idempotency")
    db.run("INSERT INTO accounts (id, available_cents, held_cents) VALUES ('acct-late', 99, 0);"
           "UPDATE accounts SET available_cents = 1 WHERE id = 'acct-a';"
           "INSERT INTO payouts (account_id, amount_cents, status, idempotency_key) VALUES"
           " ('acct-b', 300, 'held', 'key-1');"
           "CREATE TABLE audit_trail_v2 (id bigint PRIMARY KEY, payout_id bigint"
           " REFERENCES payouts(id))")


def test_restore_puts_the_snapshot_back_and_keeps_what_it_removes(ledger):
    at_snapshot = ledger.accounts()
    facts = take_snapshot(ledger)
    change_after_snapshot(ledger)

    result, _, _ = restore(ledger, facts)

    assert ledger.accounts() == at_snapshot, "accounts must equal the snapshot after the restore"
    assert ledger.rows("SELECT count(*) FROM payouts")[0][0] == 1, "the later payout is gone"
    assert ledger.revision() == "0001_ledger", "the schema is back at the snapshot's revision"
    assert not ledger.rows("SELECT 1 FROM information_schema.columns WHERE table_name ="
                           " 'payouts' AND column_name = 'idempotency_key'"), \
        "the column migration 0002 added must be gone"
    assert ledger.rows("SELECT to_regclass('audit_trail_v2')")[0][0] is None, \
        "a table created after the snapshot must not survive the restore"
    assert "match" in result.summary and "alembic at 0001_ledger" in result.summary
    assert result.facts["alembic_rolled_back_to"] == "0001_ledger"
    kept = Path(result.facts["pre_restore_dump"])
    assert kept.is_file() and kept.stat().st_size > 0, "the pre-restore data must be kept"
    assert "acct-late" not in str(ledger.accounts())
    assert "audit_trail_v2" in result.detail and "kept in" in result.detail


def test_tampered_snapshot_is_refused_and_nothing_changes(ledger):
    facts = take_snapshot(ledger)
    change_after_snapshot(ledger)
    path = Path(facts["snapshot_path"])
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))
    now = ledger.accounts()

    _, error, _ = restore(ledger, facts, expect_failure=True)

    assert "sha256" in error and "nothing was restored" in error, error
    assert ledger.accounts() == now, "a refused restore must not touch the data"
    assert ledger.revision() == "0002_payout_idempotency"


def test_a_snapshot_that_breaks_off_half_way_leaves_the_database_unchanged(ledger):
    facts = take_snapshot(ledger)
    change_after_snapshot(ledger)
    path = Path(facts["snapshot_path"])
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * 0.8)])
    # The drill's record says this truncated file is the snapshot: only pg_restore can tell.
    from runbook.adapters.pgdump import file_digest
    facts["snapshot_sha256"], facts["snapshot_size"] = file_digest(path)
    now = ledger.accounts()

    _, error, _ = restore(ledger, facts, expect_failure=True)

    assert "unchanged" in error or "rolled back" in error, error
    assert ledger.accounts() == now, "half a restore must never be committed"
    assert ledger.revision() == "0002_payout_idempotency"
    assert ledger.rows("SELECT to_regclass('audit_trail_v2')")[0][0] is not None


def test_restoring_twice_leaves_the_same_state(ledger):
    at_snapshot = ledger.accounts()
    facts = take_snapshot(ledger)
    change_after_snapshot(ledger)

    restore(ledger, facts)
    first = (ledger.accounts(), ledger.revision(), ledger.rows("SELECT * FROM payouts"))
    second, _, _ = restore(ledger, facts)

    assert (ledger.accounts(), ledger.revision(), ledger.rows("SELECT * FROM payouts")) == first
    assert ledger.accounts() == at_snapshot
    assert "row counts changed" not in second.detail, "nothing changed on the second run"


def test_without_a_recorded_snapshot_the_restore_refuses_instead_of_guessing(ledger):
    change_after_snapshot(ledger)
    _, error, _ = restore(ledger, {"alembic_before": "0001_ledger"}, expect_failure=True)
    assert "no preflight snapshot recorded" in error and "snapshot_path" in error, error
    assert ledger.revision() == "0002_payout_idempotency"


def test_a_snapshot_file_that_is_gone_is_a_clear_failure(ledger):
    facts = take_snapshot(ledger)
    Path(facts["snapshot_path"]).unlink()
    _, error, _ = restore(ledger, facts, expect_failure=True)
    assert "is gone" in error, error
