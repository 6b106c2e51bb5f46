"""`/golive preflight` through the sandbox: one engine execution runs every check concurrently
(real PostgreSQL ledger, pg_dump/pg_restore, alembic, the fake GitHub over HTTP, generated RC
evidence), one checklist card updated in place, details and the SQL file in its thread, the
stored result gating `maintenance on`."""

from __future__ import annotations

import json
import stat
import time

import pytest

from bot.dev.rehearse.sample import LEDGER_TABLES, prod_config_rules, rc_evidence_toml
from bot.ids import Action
from tests.preflight.conftest import V2
from tests.support import pg
from tests.support.harness import BASE_CONFIG, Bot, is_run_card, text_of
from tests.support.preflight import MIGRATIONS

TOKEN = "ghp_faketoken0123456789abcd"


def preflight_toml(gh, evidence, ledger, tmp_path, *, env="prod-live.env", extra=""):
    for name in ("prod-live.env", "prod-test-keys.env"):  # DATABASE_URL: a database that answers
        path = evidence / "env" / name
        path.write_text(path.read_text().replace(
            "postgresql://postgres@127.0.0.1:5432/paybox", ledger))
    return f"""
[preflight]
max_age_minutes = 60
{extra}
[preflight.release_freeze]
repo = "acme/paybox"
api_url = "{gh.url}/api/v3"
token = "{TOKEN}"

[preflight.prod_config]
source = "env_file"
env_file = "{evidence / 'env' / env}"
{prod_config_rules(gh.url)}
[preflight.backup_drill]
database_url = "{ledger}"
scratch_url = "{pg.ADMIN_URL}"
snapshot_dir = "{tmp_path / 'snapshots'}"
ledger_tables = {json.dumps(LEDGER_TABLES)}

[preflight.migration_check]
script_location = "{MIGRATIONS}"
{rc_evidence_toml(str(evidence / 'evidence' / '{tag}'), gh.url + "/v1/balance", "GET")}
"""


@pytest.fixture
def make_bot(clean_db, tmp_path, toy, gh, evidence, ledger):
    bots = []

    def make(**kw):
        cfg = BASE_CONFIG + toy.config() + preflight_toml(gh, evidence, ledger, tmp_path, **kw)
        b = Bot(clean_db, tmp_path, config=cfg)
        bots.append(b)
        return b

    yield make
    for b in bots:
        b.stop()


def run_preflight(bot, words="preflight", *, outcome="succeeded", timeout=90.0):
    """`/golive <words>`; wait for the checklist card to show ``outcome``; return it."""
    after = bot.seq()
    answer = bot.command("alice", words)
    assert "Queued" in answer, answer
    card = bot.workspace.wait_for_message(
        "C_CUTOVER", contains="step `preflight`", after_seq=after, timeout=30,
        predicate=lambda m: m.ephemeral_to is None)  # in the run card's thread (issue 21)
    return bot.card_showing(card, f"— {outcome}", "failed" if outcome == "succeeded"
                            else "succeeded", timeout=timeout)


def assert_no_leak(bot, secrets):
    for name, value in secrets.items():
        leaks = bot.workspace.find_in_outgoing(value)
        assert not leaks, f"{name} reached Slack in {[c.method for c in leaks]}"


def test_green_preflight_is_one_checklist_and_opens_maintenance_without_override(
        make_bot, evidence):
    bot = make_bot()
    bot.command("alice", f"start v2 {V2}")
    t0 = time.monotonic()
    card = run_preflight(bot)
    took = time.monotonic() - t0
    shown = text_of(card)
    assert "— succeeded" in shown, shown
    for line in ("✅ *release_freeze*", "✅ *prod_config*", "✅ *backup_drill*", "✅ *rc_evidence*",
                 "⚠️ *migration_check*"):
        assert line in shown, f"checklist lacks {line!r}: {shown}"
    cards = [m for m in bot.workspace.messages("C_CUTOVER", include_ephemeral=False)
             if "step `preflight`" in text_of(m) and "Decision needed" not in text_of(m)]
    assert len(cards) == 1, f"the checklist must be one message, got {len(cards)}"
    assert card.edited, "the checklist must be updated in place as checks finish"
    def details():
        # Slack threads are one level deep: the checklist is a reply in the run card's thread,
        # so its details are replies in that same thread
        return [m for m in bot.workspace.thread("C_CUTOVER", card.thread_ts or card.ts)
                if "Details of" in text_of(m) and "0002_payout_idempotency" in text_of(m)]
    details.__qualname__ = "the details reply in the checklist's thread"
    bot.workspace.wait_for(details, 15)

    def sql_files():
        return [f for f in list(bot.workspace.files.values())
                if f.name.endswith(".sql") and f.completed and f.message_ts]
    sql_files.__qualname__ = "the migration SQL uploaded as a file"
    sql = bot.workspace.wait_for(sql_files, 15)
    assert b"ALTER TABLE payouts ADD COLUMN idempotency_key" in (sql[0].content or b""), \
        "the uploaded file must be the migration SQL"
    thread = bot.workspace.thread("C_CUTOVER", card.thread_ts or card.ts)
    assert any(sql[0].id in m.files for m in thread), "the SQL file belongs in the card's thread"
    status = bot.command("carol", "status")
    assert "Preflight* — green" in status and V2[:12] in status, status

    after = bot.seq()
    answer = bot.command("alice", "maintenance on")
    assert "Approval requested" in answer, f"a green preflight must open the gate: {answer}"
    mcard = bot.workspace.wait_for_message("C_CUTOVER", contains="Maintenance mode on",
                                           after_seq=after,
                                           predicate=lambda m: m.ephemeral_to is None and not is_run_card(m))
    assert "Override" not in text_of(mcard) and "5/5 checks green" in text_of(mcard)
    bot.sandbox.click("bob", mcard, action_id=Action.APPROVE)
    assert "succeeded" in text_of(bot.card_showing(mcard, "succeeded", "failed"))
    assert took < 60, f"preflight took {took:.1f} s"
    from runbook.adapters.envsource import from_file

    env = from_file(evidence / "env" / "prod-live.env")
    assert_no_leak(bot, {"github token": TOKEN, **{k: v for k, v in env.items()
                                                   if k.endswith(("KEY", "SECRET")) and v}})


def test_red_preflight_blocks_maintenance_names_the_check_and_override_needs_two(
        make_bot, evidence):
    bot = make_bot(env="prod-test-keys.env")
    bot.command("alice", f"start v2 {V2}")
    card = run_preflight(bot, outcome="failed")
    assert "❌ *prod_config*" in text_of(card), text_of(card)
    answer = bot.command("alice", "maintenance on")
    assert "cannot start" in answer and "prod_config" in answer and "red" in answer, answer
    assert "--override" in answer
    after = bot.seq()
    answer = bot.command("alice", 'maintenance on --override "test keys accepted for drill"')
    assert "someone other than you must approve" in answer, answer
    mcard = bot.workspace.wait_for_message("C_CUTOVER", contains="Maintenance mode on",
                                           after_seq=after,
                                           predicate=lambda m: m.ephemeral_to is None and not is_run_card(m))
    assert "test keys accepted for drill" in text_of(mcard) and "Approve" in text_of(mcard)

    # Fix the env, re-run just that check: the stored result turns green for the same SHA.
    live = (evidence / "env" / "prod-live.env").read_text()
    (evidence / "env" / "prod-test-keys.env").write_text(live)
    one = run_preflight(bot, "preflight prod_config")
    assert "✅ *prod_config*" in text_of(one) and "release_freeze" not in text_of(one)
    status = bot.command("carol", "status")
    assert "Preflight* — green" in status and "✅ *prod_config*" in status, status
    assert_no_leak(bot, {"github token": TOKEN})


def test_stale_preflight_blocks_with_its_age(make_bot):
    bot = make_bot()
    bot.command("alice", f"start v2 {V2}")
    run_preflight(bot)
    bot.clock.advance(minutes=61)  # the bot's injected clock
    answer = bot.command("alice", "maintenance on")
    assert "61 min old" in answer and "limit is 60" in answer, answer


def test_a_hanging_team_script_fails_alone_while_the_others_finish(make_bot, tmp_path):
    script = tmp_path / "hang.sh"
    script.write_text("#!/bin/sh\necho starting\nsleep 60\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    bot = make_bot(extra=f"""[preflight.timeouts]
team_scripts = 2

[[preflight.team_scripts]]
name = "hangs"
command = ["{script}"]
""")
    bot.command("alice", f"start v2 {V2}")
    t0 = time.monotonic()
    card = run_preflight(bot, outcome="failed")
    took = time.monotonic() - t0
    shown = text_of(card)
    assert "❌ *team_scripts*: timed out after 2 s" in shown, shown
    for line in ("✅ *release_freeze*", "✅ *prod_config*", "✅ *backup_drill*", "✅ *rc_evidence*"):
        assert line in shown, f"{line!r} must finish despite the hanging script: {shown}"
    assert took < 45, f"the hanging script held the preflight up: {took:.1f} s"
    answer = bot.command("alice", "maintenance on")
    assert "team_scripts" in answer and "timed out" in answer, answer


def test_without_a_preflight_section_every_check_fails_clearly(bot):
    bot.command("alice", "start v2")
    card = run_preflight(bot, outcome="failed")
    shown = text_of(card)
    for name in ("release_freeze", "prod_config", "backup_drill", "migration_check",
                 "rc_evidence"):
        assert f"❌ *{name}*: not configured: add a [preflight.{name}]" in shown, shown
