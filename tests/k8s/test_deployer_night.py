"""The night on the cluster, through the bot and the sandbox Slack: maintenance on, deploy v2
(server-side apply, rollout), migrate (a Job), health, smoke, traffic open; then a rollback
from #incident to v1 (the images re-applied, the schema downgraded by a Job, traffic open)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.test_full_cutover import request_and_approve, run_ungated
from tests.integration.test_rollback_e2e import ask_rollback, timelines_complete
from tests.k8s.fixtures_deploy import Stack, k8s_stack_fixture  # noqa: F401
from tests.k8s.test_deployer import IMAGES, V1_SHA, app_in_cluster, version_answered
from tests.support.harness import BASE_CONFIG, Bot
from tests.support.toml_out import target_table

pytestmark = [pytest.mark.k8s, pytest.mark.docker, pytest.mark.slow]


def schema(stack: Stack) -> str | None:
    import psycopg

    with psycopg.connect(stack.database_url) as c:
        row = c.execute("SELECT version_num FROM alembic_version").fetchone()
    return row[0] if row else None


def v1_running(stack: Stack) -> None:
    """What the team had before the night: v1 deployed and migrated (through the steps)."""
    from runbook.steps import deploy, migrate

    target = stack.target()
    deploy.run(stack.ctx(target, params={"tag": "v1"}, facts={"rc_sha": V1_SHA}))
    migrate.run(stack.ctx(target))
    assert schema(stack) == "0001_ledger"


def test_the_night_and_its_rollback_on_the_cluster_through_the_bot(
        k8s_stack: Stack, clean_db: str, tmp_path: Any):
    v1_running(k8s_stack)
    edge = f"http://127.0.0.1:{k8s_stack.edge_port}"
    bot = Bot(clean_db, tmp_path, config=target_table(k8s_stack.night_target()) + BASE_CONFIG)
    try:
        sha = IMAGES["app:v2"]["revision"]
        assert "started cutover run" in bot.command("alice", f"start v2 {sha}")
        request_and_approve(bot, "alice", 'maintenance on --override "k8s drill"', "bob",
                            "Maintenance mode on")
        assert httpx.get(f"{edge}/").status_code == 503
        deployed = request_and_approve(bot, "alice", "deploy v2", "carol", "Deploy")
        assert "app/app: v1 -> v2" in deployed, deployed
        assert "@sha256:" in app_in_cluster(k8s_stack)[0]
        migrated = run_ungated(bot, "migrate", "Migrations")
        assert "0001_ledger -> 0002_payout_idempotency" in migrated, migrated
        run_ungated(bot, "health", "Health")
        run_ungated(bot, "smoke", "Smoke")
        request_and_approve(bot, "alice", "traffic open", "bob", "Open traffic")
        assert httpx.get(f"{edge}/api/health").json()["version"] == "v2"

        after = bot.seq()
        ask_rollback(bot, "rollback drill on kubernetes")
        timelines_complete(bot, after)
    finally:
        bot.stop()
    image, revision = app_in_cluster(k8s_stack)
    assert image.startswith("127.0.0.1:5000/paybox/app:v1@"), image
    assert revision == "3"
    assert version_answered(k8s_stack) == "v1"
    assert schema(k8s_stack) == "0001_ledger"
    assert httpx.get(f"{edge}/api/health").status_code == 200, "traffic open again"
