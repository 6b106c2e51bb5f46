"""What the bot says matches what happened (issue 18, "Truthful words"), through signed
commands and clicks against the sandbox: status after an overridden preflight and after a
finished rollback, the rollback plan's read-only pages, the summary after a rollback, what
`finish --abort` leaves behind, and which config the running bot loaded."""

from __future__ import annotations

import hashlib
import json

import psycopg
import pytest

from bot.ids import Action
from tests.scenario.test_rollback_shell import DEPLOYED, run_rollback, set_facts
from tests.scenario.test_who_may import answer, card_for, workspace
from tests.support.harness import BASE_CONFIG, Bot, text_of


def plain(text: str) -> str:
    """What a person reads of mrkdwn: without the bold and code marks."""
    return text.replace("*", "").replace("`", "")


OVERRIDE = 'maintenance on --override "the freeze API is down, checked by hand"'


def maintenance_on(bot: Bot) -> None:
    """`/golive maintenance on` past the preflight (an override), approved by bob."""
    card = bot.request("alice", OVERRIDE)
    bot.sandbox.click("bob", card, action_id=Action.APPROVE)
    assert "succeeded" in text_of(bot.card_showing(card, "succeeded", "failed"))


def record_deploy(db: str, tag: str) -> None:
    """What a deploy step that succeeded leaves: its execution row and its facts."""
    with psycopg.connect(db) as conn:
        conn.execute("INSERT INTO step_executions (run_id, step_id, attempt, state, params,"
                     " requested_by, channel, started_at, finished_at) SELECT id, 'deploy', 1,"
                     " 'succeeded', %s, 'U_ALICE', 'C_CUTOVER', now(), now() FROM runs"
                     " WHERE status = 'active'", (json.dumps({"tag": tag}),))
    set_facts(db, {"deployed_tag": tag, "previous_images": {"app": {"tag": "v1"}}})


# ------------------------------------------------------------------ status

def test_status_after_an_overridden_preflight_names_the_real_next_step(toybot):
    toybot.command("alice", "start v2")
    maintenance_on(toybot)
    status = plain(toybot.command("bob", "status"))
    assert "Next: Deploy the release tag — /golive deploy" in status, status
    assert "Next: Preflight" not in status, status
    assert "Phase: Cutover (T-0)" in status, status
    assert "passed over: maintenance-on went ahead with --override “the freeze API is down" \
        in status, f"the preflight line must say the run went past it:\n{status}"


def test_status_and_summary_after_a_finished_rollback_say_where_it_ended(
        clean_db, tmp_path, toy):
    bot = run_rollback(clean_db, tmp_path, toy, with_revert=False)
    try:
        card_for(bot, "Rollback of run #1: completed", 0)
        status = plain(bot.command("bob", "status"))
        assert "Next: the run was rolled back; /golive finish closes the run" in status, status
        assert "Next: Preflight" not in status, status
        assert "Rolled back: traffic open" in status, status
        summary = plain(text_of(card_for(bot, "Cutover run #1 summary", 0, run_card=True)))
        assert "Rolled back: traffic open" in summary, summary
    finally:
        bot.stop()


def test_status_names_the_release_and_schema_a_rollback_went_back_to(pbot, clean_db):
    answer(pbot, "alice", "start v2")
    set_facts(clean_db, {**DEPLOYED, "alembic_rolled_back_to": "0001_ledger"})
    with psycopg.connect(clean_db) as conn:  # the shipped plan's steps, all succeeded
        for n, step in enumerate(("rb-maintenance-on", "rb-revert-deploy",
                                  "rb-restore-or-downgrade", "rb-verify", "rb-traffic-open")):
            conn.execute("INSERT INTO step_executions (run_id, step_id, attempt, state,"
                         " requested_by, channel, started_at, finished_at) SELECT id, %s, 1,"
                         " 'succeeded', 'U_ALICE', 'C_INCIDENT', now(), now() + %s * interval"
                         " '1 second' FROM runs", (step, n))
    status = plain(answer(pbot, "bob", "status"))
    assert "Phase: Rollback (done)" in status, status
    assert ("Rolled back: containers back on app v1, worker v1; schema at "
            "0001_ledger; traffic open") in status, status


@pytest.fixture
def pbot(clean_db, tmp_path):
    b = Bot(clean_db, tmp_path, workspace=workspace(), worker=False, config=BASE_CONFIG + """
[target]
name = "shop"
public_url = "http://127.0.0.1:9"
internal_url = "http://127.0.0.1:9"
readonly_paths = ["/ledger/export", "/orders?page=1"]
""")
    yield b
    b.stop()


# ------------------------------------------------------------------ the rollback plan

def test_the_rollback_plan_names_the_configured_read_only_pages(pbot, clean_db):
    answer(pbot, "alice", "start v2")
    set_facts(clean_db, DEPLOYED)
    after = pbot.seq()
    answer(pbot, "alice", "rollback payouts failing", channel="C_INCIDENT")
    card = plain(text_of(card_for(pbot, "Rollback requested", after, channel="C_INCIDENT")))
    assert "read-only pages /ledger/export, /orders?page=1 answer on the old version" in card, \
        card
    assert "/dashboard" not in card, f"the plan must not name the sample's page:\n{card}"


# ------------------------------------------------------------------ finish --abort

def test_finish_abort_says_maintenance_is_on_and_the_release_deployed(toybot, clean_db, toy):
    toybot.command("alice", "start v2")
    maintenance_on(toybot)
    record_deploy(clean_db, "v2")
    reply = plain(toybot.command("alice", 'finish --abort "payment provider outage"'))
    assert "closed run #1: aborted" in reply, reply
    assert "Maintenance is still ON" in reply, reply
    assert "The new release v2 is still deployed" in reply, reply
    assert "The stack is left as it is: maintenance on and v2 deployed." in reply, reply
    assert toy.flag.exists(), "aborting changes nothing on the stack"


def test_finish_abort_before_anything_ran_has_nothing_to_warn_about(toybot):
    toybot.command("alice", "start v2")
    reply = toybot.command("alice", 'finish --abort "wrong tag"')
    assert "closed run #1: aborted" in reply, reply
    assert "⚠️" not in reply and "left as it is" not in reply, reply


# ------------------------------------------------------------------ the config's identity

def test_status_says_which_config_the_bot_loaded(pbot, tmp_path):
    path = tmp_path / "golive.toml"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    status = plain(answer(pbot, "bob", "status"))
    assert f"Config: {path.resolve()} (sha256 {digest})" in status, status
