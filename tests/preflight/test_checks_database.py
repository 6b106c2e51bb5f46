"""Backup drill and migration check against real PostgreSQL, pg_dump, pg_restore, alembic and
squawk, on a paybox ledger database created per test."""

from __future__ import annotations

import psycopg
import pytest

from bot.dev.rehearse.sample import LEDGER_TABLES
from runbook.adapters import pgdump
from runbook.checks import build_specs
from runbook.checks.base import Status
from runbook.checks.config import PreflightConfig
from runbook.checks.runner import run_checks
from tests.support import pg
from tests.support.preflight import MIGRATIONS, assert_no_secret


def config(ledger, tmp_path, **backup):
    return PreflightConfig.model_validate({
        "backup_drill": {"database_url": ledger, "scratch_url": pg.ADMIN_URL,
                         "snapshot_dir": str(tmp_path / "snapshots"),
                         "ledger_tables": LEDGER_TABLES, **backup},
        "migration_check": {"script_location": str(MIGRATIONS)},
    })


def scratch_dbs():
    with psycopg.connect(pg.ADMIN_URL) as conn:
        return {r[0] for r in conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'golive_drill_%' "
            "OR datname LIKE 'golive_migcopy_%'")}


def test_drill_and_migration_on_the_prod_copy(ledger, tmp_path, monkeypatch):
    made: list[str] = []  # this test's scratch copies (other tests and workers make theirs)
    create = pgdump.create_scratch

    def recorded(*args, **kwargs):
        name, url = create(*args, **kwargs)
        made.append(name)
        return name, url

    monkeypatch.setattr(pgdump, "create_scratch", recorded)
    cfg = config(ledger, tmp_path)
    report = run_checks(build_specs(cfg, ["backup_drill", "migration_check"]), rc_tag="v2")
    drill, mig = report.results["backup_drill"], report.results["migration_check"]
    assert drill.status is Status.OK, (drill.finding, drill.details)
    assert "3 ledger md5s match" in drill.finding, drill.finding
    assert drill.facts["snapshot_size"] > 0 and len(drill.facts["snapshot_sha256"]) == 64
    assert drill.facts["snapshot_source_rows"]["transactions"] == 300
    assert mig.status is Status.WARN, (mig.finding, mig.details)
    assert "0001_ledger → 0002_payout_idempotency pending" in mig.finding
    assert "upgrade on prod copy OK" in mig.details[-1] or any(
        "upgrade head on the prod copy" in d for d in mig.details), mig.details
    assert "require-concurrent-index-creation" in mig.finding, mig.finding
    (name, sql), = mig.files.items()
    assert name == "migration-0001_ledger-to-0002_payout_idempotency.sql"
    assert "ALTER TABLE payouts ADD COLUMN idempotency_key" in sql
    assert mig.facts["alembic_current"] == "0001_ledger"
    with psycopg.connect(ledger) as conn:  # the source itself is untouched
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == \
            "0001_ledger"
    assert made, "the drill restores into a scratch copy (the migration check borrows it)"
    assert not set(made) & scratch_dbs(), "the scratch copy must be dropped"
    for r in (drill, mig):
        assert_no_secret(r, {"url": ledger})


def test_migration_check_alone_makes_its_own_copy(ledger, tmp_path):
    cfg = config(ledger, tmp_path)
    mig = run_checks(build_specs(cfg, ["migration_check"])).results["migration_check"]
    assert mig.status is Status.WARN and mig.facts.get("migration_upgrade_seconds") is not None


def test_a_failing_migration_fails_on_the_copy(ledger, tmp_path):
    with psycopg.connect(ledger, autocommit=True) as conn:  # the index name is taken
        conn.execute("CREATE INDEX payouts_idempotency_key_uq ON payouts (status)")
    cfg = config(ledger, tmp_path)
    mig = run_checks(build_specs(cfg, ["migration_check"])).results["migration_check"]
    assert mig.status is Status.FAIL and "upgrade head FAILED on the prod copy" in mig.finding


def test_a_corrupt_backup_fails_clearly(ledger, tmp_path):
    cfg = config(ledger, tmp_path, snapshot_command=["sh", "-c", "head -c 4096 /dev/urandom > {path}"])
    report = run_checks(build_specs(cfg, ["backup_drill", "migration_check"]), rc_tag="v2")
    drill, mig = report.results["backup_drill"], report.results["migration_check"]
    assert drill.status is Status.FAIL
    assert "does not restore" in drill.finding and "corrupt" in drill.finding
    assert mig.status is Status.FAIL and "did not restore one" in mig.finding


def test_at_head_is_ok_and_unreachable_source_is_clear(tmp_path):
    from tests.support.preflight import ledger_db

    name, url = ledger_db(rows=10, revision="head")
    try:
        mig = run_checks(build_specs(config(url, tmp_path), ["migration_check"])
                         ).results["migration_check"]
        assert mig.status is Status.OK and "at head" in mig.finding, mig.finding
    finally:
        pg.drop_database(name)
    dead = "postgresql://postgres:pw-s3cret-xyz@127.0.0.1:1/ledger"
    r = run_checks(build_specs(config(dead, tmp_path), ["backup_drill"])).results["backup_drill"]
    assert r.status is Status.FAIL and "snapshot failed" in r.finding
    assert_no_secret(r, {"pw": "pw-s3cret-xyz"})


@pytest.mark.docker
def test_image_revision_label_from_the_local_registry(gh):
    """Needs the local registry on 127.0.0.1:5000 with the paybox images (.ci/docker-up.sh)."""
    import docker

    from runbook.adapters.docker import REVISION_LABEL
    from tests.preflight.conftest import V1, V2
    from tests.preflight.test_checks_http_and_files import freeze
    from tests.support.paybox_env import REGISTRY

    # What the Docker engine says the registry's v2 image was built from (build.sh may have
    # rebuilt it since build/revisions.json was written): the tag must point there.
    client = docker.from_env()
    built = client.images.pull(f"{REGISTRY}/paybox/app", tag="v2").labels[REVISION_LABEL]
    client.close()
    gh.state["tags"]["v2"] = {"commit": built, "annotated": True}
    image = f"{REGISTRY}/paybox/app:{{tag}}"
    r = freeze(gh, sha=built, image=image, registry_scheme="http")
    assert r.status is Status.OK, r.finding
    gh.state["tags"]["v2"] = {"commit": V1, "annotated": False}
    r = freeze(gh, sha=V1, image=image, registry_scheme="http")
    assert r.status is Status.FAIL and "was built from" in r.finding
    r = freeze(gh, tag="v1", sha=V1, image=f"{REGISTRY}/paybox/nope:{{tag}}",
               registry_scheme="http")
    assert r.status is Status.FAIL and "not found in the registry" in r.finding
    r = freeze(gh, tag="v1", sha=V1, image="127.0.0.1:1/paybox/app:{tag}",
               registry_scheme="http")
    assert r.status is Status.FAIL and "unreachable" in r.finding
    assert built != V1 and V2


def test_drill_without_ledger_tables_compares_row_counts_only(ledger, tmp_path):
    """No table is built in: without ledger_tables every table's rows are counted, none is
    md5'd, and the line says so."""
    report = run_checks(build_specs(config(ledger, tmp_path, ledger_tables=[]),
                                    ["backup_drill"]), rc_tag="v2")
    drill = report.results["backup_drill"]
    assert drill.status is Status.OK, (drill.finding, drill.details)
    assert "row counts only: no ledger_tables" in drill.finding, drill.finding
    assert drill.facts["snapshot_source_rows"]["transactions"] == 300
