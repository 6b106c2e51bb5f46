"""migrate: alembic upgrade head on the ledger DB, both modes; failures are clear and masked."""

from __future__ import annotations

import shutil

import pytest

from runbook.steps.deploy import run as deploy
from runbook.steps.migrate import run as migrate

pytestmark = pytest.mark.docker


def test_compose_run_upgrades_0001_to_head_with_the_deployed_image(stack, run_step):
    dep = run_step(deploy, params={"tag": "v2"})
    out = run_step(migrate, facts=dep.result.facts)
    assert out.result.facts == {"alembic_before": "0001_ledger",
                                "alembic_after": "0002_payout_idempotency"}
    assert stack.alembic_revision() == "0002_payout_idempotency"
    assert "0001_ledger -> 0002_payout_idempotency" in out.result.summary


def test_alembic_api_upgrades_and_records_before_after(stack, run_step):
    target = stack.target(migrations={"mode": "alembic-api"})
    out = run_step(migrate, target=target)
    assert out.result.facts["alembic_before"] == "0001_ledger"
    assert out.result.facts["alembic_after"] == "0002_payout_idempotency"
    assert stack.alembic_revision() == "0002_payout_idempotency"
    again = run_step(migrate, target=target)
    assert "unchanged" in again.result.summary


def test_failing_migration_fails_clearly_and_keeps_before(stack, run_step, tmp_path,
                                                         paybox_dir):
    scripts = tmp_path / "migrations"
    shutil.copytree(paybox_dir / "app" / "migrations", scripts,
                    ignore=shutil.ignore_patterns("__pycache__"))
    (scripts / "versions" / "0003_broken.py").write_text(
        'revision = "0003_broken"\ndown_revision = "0002_payout_idempotency"\n'
        "branch_labels = None\ndepends_on = None\n"
        "from alembic import op\n\n"
        "def upgrade():\n    op.execute('ALTER TABLE no_such_table ADD COLUMN x int')\n\n"
        "def downgrade():\n    pass\n")
    target = stack.target(migrations={"mode": "alembic-api", "script_location": str(scripts)})
    out = run_step(migrate, target=target, expect_failure=True)
    assert "alembic upgrade head failed" in out.message
    assert "no_such_table" in out.message
    assert out.error.facts == {"alembic_before": "0001_ledger"}
    # transaction_per_migration: 0002 applied, 0003 rolled back.
    assert stack.alembic_revision() == "0002_payout_idempotency"


def test_compose_run_failure_shows_alembic_output_masked(stack, run_step):
    target = stack.target(extra_env={"PAYBOX_DATABASE_URL": stack.database_url.replace(
        "/golive_it_", "/missing_db_")})
    out = run_step(migrate, target=target, expect_failure=True)
    assert "alembic current failed" in out.message
    assert "missing_db_" in out.message or "does not exist" in out.message


def test_bad_revision_param_is_refused(stack, run_step):
    out = run_step(migrate, params={"target": "head; drop table"}, expect_failure=True)
    assert "invalid alembic revision" in out.message
