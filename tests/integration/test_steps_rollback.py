"""rollback: revert the deploy to the recorded images, downgrade migrations, verify."""

from __future__ import annotations

import pytest

from runbook.steps.deploy import run as deploy
from runbook.steps.migrate import run as migrate
from runbook.steps.rollback import data, revert_deploy, verify_readonly

pytestmark = pytest.mark.docker


def test_full_rollback_after_deploy_and_migrate(stack, run_step):
    before = stack.running_image()
    facts: dict = {}
    facts.update(run_step(deploy, params={"tag": "v2"}).result.facts)
    facts.update(run_step(migrate, facts=facts).result.facts)
    assert stack.running_image()["image"].endswith(":v2")

    rev = run_step(revert_deploy, facts=facts)
    assert "back on v1" in rev.result.summary
    assert stack.running_image()["image_id"] == before["image_id"]

    down = run_step(data, facts=facts, params={"strategy": "downgrade"})
    assert "0002_payout_idempotency -> 0001_ledger" in down.result.summary
    assert stack.alembic_revision() == "0001_ledger"

    ver = run_step(verify_readonly, facts=facts)
    assert "version v1" in ver.result.summary
    assert "read-only /dashboard: ok" in ver.result.summary


def test_restore_without_a_preflight_snapshot_refuses(stack, run_step):
    # The restore itself is tested against real PostgreSQL in test_rollback_restore.py.
    out = run_step(data, facts={"alembic_before": "0001_ledger"},
                   params={"strategy": "restore"}, expect_failure=True)
    assert "no preflight snapshot recorded" in out.message


def test_revert_without_recorded_images_fails_clearly(stack, run_step):
    out = run_step(revert_deploy, facts={}, expect_failure=True)
    assert "no `previous_images`" in out.message
