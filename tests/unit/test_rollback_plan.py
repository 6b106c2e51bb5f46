"""The rollback plan filled with a run's real values: revert tags, database choices, warnings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from runbook.model import default_runbook_path, load_runbook
from runbook.rollback_plan import build_plan, human_age

KINDS = {
    "check.all", "check.release_freeze", "check.prod_config", "check.backup_drill",
    "check.migration_dry_run", "check.rc_evidence", "maintenance", "deploy", "migrate",
    "health", "smoke", "traffic", "canary", "watch.ledger", "watch.webhooks",
    "watch.error_budget", "rollback.revert_deploy", "rollback.data", "rollback.verify_readonly",
}
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
# The paybox scripts plus a v3 migration, as revision_chain() reads them.
CHAIN = {
    "0001_ledger": ((), "ledger: accounts, transactions, payouts"),
    "0002_payout_idempotency": (("0001_ledger",), "payout idempotency key"),
    "0003_fees": (("0002_payout_idempotency",), "fees column"),
}
DEPLOYED = {
    "deployed_tag": "v2",
    "previous_images": {"app": {"image": "127.0.0.1:5000/paybox/app:v1", "image_id": "sha256:1",
                                "revision": "a1b2c3d4e5f6", "tag": "v1"}},
    "alembic_before": "0001_ledger", "alembic_after": "0003_fees",
}
SNAPSHOT = {
    "snapshot_path": "/var/backups/paybox-v2-20250301T1130.dump",
    "snapshot_sha256": "ab" * 32, "snapshot_size": 12345,
    "snapshot_taken_at": "2025-03-01T11:30:00+00:00",
    "snapshot_source_rows": {"accounts": 2, "payouts": 1, "transactions": 3},
}


@pytest.fixture(scope="module")
def steps():
    return load_runbook(default_runbook_path(), known_kinds=KINDS).rollback


def data_step(plan):
    return next(s for s in plan.steps if s.kind == "rollback.data")


def test_the_plan_lists_the_five_runbook_steps_with_the_recorded_tags(steps):
    plan = build_plan(steps, {**DEPLOYED, **SNAPSHOT}, now=NOW, chain=CHAIN,
                      readonly_paths=("/dashboard",))
    assert [s.kind for s in plan.steps] == ["maintenance", "rollback.revert_deploy",
                                            "rollback.data", "rollback.verify_readonly",
                                            "traffic"]
    revert = plan.steps[1]
    assert revert.lines == ("app: v2 -> v1 (sha a1b2c3d)",), revert.lines
    assert plan.ready and plan.default_strategy == "downgrade"
    text = plan.text()
    assert "1. Maintenance mode on" in text and "app: v2 -> v1" in text
    assert "/dashboard" in text and "5. Re-open traffic" in text
    bare = build_plan(steps, {**DEPLOYED, **SNAPSHOT}, now=NOW, chain=CHAIN).text()
    assert "/dashboard" not in bare and "readonly_paths is empty" in bare, \
        "without configured read-only paths the plan names none (never the sample's)"


def test_downgrade_names_the_migrations_it_reverts_newest_first(steps):
    option = build_plan(steps, DEPLOYED, now=NOW, chain=CHAIN).option("downgrade")
    assert option.offered, option.why_not
    assert [m.revision for m in option.reverts] == ["0003_fees", "0002_payout_idempotency"]
    assert "from 0003_fees back to 0001_ledger; reverts 2 migrations:" in option.lines[0]
    assert "0002_payout_idempotency: payout idempotency key" in "\n".join(option.lines)
    assert option.title == "alembic downgrade to 0001_ledger"


def test_restore_shows_its_age_and_warns_what_is_lost(steps):
    plan = build_plan(steps, {**DEPLOYED, **SNAPSHOT}, now=NOW, chain=CHAIN, strategy="restore")
    option = plan.option("restore")
    assert option.offered and plan.default_strategy == "restore"
    assert option.snapshot_age_s == 1800
    assert "30 min ago" in "\n".join(option.lines)
    assert any("everything written in the last 30 min" in w
               and "is lost from accounts, payouts, transactions." in w
               for w in option.warnings), option.warnings
    assert not any("deposits" in w for w in option.warnings), "the snapshot's tables, not prose"
    assert not any("older than" in w for w in option.warnings), "30 min is not stale"
    assert "3 tables, 6 rows at the time" in option.lines


def test_an_old_snapshot_gets_the_stale_warning(steps):
    old = {**SNAPSHOT, "snapshot_taken_at": (NOW - timedelta(hours=26)).isoformat()}
    option = build_plan(steps, {**DEPLOYED, **old}, now=NOW, chain=CHAIN).option("restore")
    assert any("1 d 2 h old, older than 2 h 00 min" in w for w in option.warnings), \
        option.warnings


def test_no_snapshot_means_restore_is_not_offered_and_says_why(steps):
    plan = build_plan(steps, DEPLOYED, now=NOW, chain=CHAIN, strategy="restore")
    option = plan.option("restore")
    assert not option.offered and "no preflight snapshot recorded" in option.why_not
    assert plan.default_strategy is None, "the configured strategy is unavailable: a person picks"
    assert plan.ready, "downgrade is still possible"
    assert "not offered: no preflight snapshot" in plan.text()


def test_no_downgrade_path_when_the_recorded_revision_is_unknown_to_the_scripts(steps):
    facts = {**DEPLOYED, **SNAPSHOT, "alembic_after": "0009_elsewhere"}
    option = build_plan(steps, facts, now=NOW, chain=CHAIN).option("downgrade")
    assert not option.offered and "0009_elsewhere is not among the migration scripts" in \
        option.why_not


def test_no_downgrade_path_when_the_chain_does_not_lead_back(steps):
    branched = {**CHAIN, "0003_fees": (("0001_ledger",), "fees"),
                "0002_payout_idempotency": (("0001_ledger",), "key")}
    facts = {**DEPLOYED, "alembic_before": "0002_payout_idempotency"}
    option = build_plan(steps, facts, now=NOW, chain=branched).option("downgrade")
    assert not option.offered and "no down_revision path from 0003_fees back to " \
        "0002_payout_idempotency" in option.why_not


def test_no_downgrade_without_the_recorded_revisions(steps):
    facts = {k: v for k, v in DEPLOYED.items() if k != "alembic_after"}
    option = build_plan(steps, facts, now=NOW, chain=CHAIN).option("downgrade")
    assert not option.offered and "alembic_after" in option.why_not


def test_unchanged_schema_offers_a_downgrade_that_reverts_nothing(steps):
    facts = {**DEPLOYED, "alembic_after": "0001_ledger"}
    option = build_plan(steps, facts, now=NOW, chain=CHAIN).option("downgrade")
    assert option.offered and option.reverts == () and "no migration to revert" in option.lines[0]


def test_neither_option_blocks_the_plan_and_never_guesses(steps):
    facts = {"deployed_tag": "v2", "previous_images": DEPLOYED["previous_images"]}
    plan = build_plan(steps, facts, now=NOW, chain=CHAIN)
    assert not plan.ready and plan.default_strategy is None
    assert "neither a snapshot restore nor a downgrade is possible" in data_step(plan).blocked


def test_without_recorded_images_there_is_nothing_to_revert(steps):
    plan = build_plan(steps, {**SNAPSHOT}, now=NOW, chain=CHAIN)
    assert not plan.ready
    assert any("no previous image recorded" in p for p in plan.problems), plan.problems


def test_human_age():
    assert [human_age(s) for s in (40, 720, 3 * 3600 + 300, 90000)] == [
        "40 s", "12 min", "3 h 05 min", "1 d 1 h"]
