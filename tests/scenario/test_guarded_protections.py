"""Protections an outside mutation check found unguarded (issue 23), each tested as the person in
the channel (or an attacker holding a captured request) would meet it: signed commands, clicks
and modals through the sandbox, the real HTTP endpoint, and the rows in PostgreSQL. None needs
Docker; each fails with its protection removed (``tests/mutation/mutations.py``, issue 23).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg

from bot.ids import Action, Block
from runbook.steps.preflight import config_of, expected_checks
from tests.scenario.test_ingress import signed_command
from tests.scenario.test_rollback_shell import DEPLOYED, LONG_REASON, set_facts
from tests.scenario.test_who_may import (
    answer,
    card_for,
    interrupted_notice,
    rows,
    workspace,
)
from tests.support.harness import BASE_CONFIG, Bot, text_of

RC_SHA = "318782fdabd867683bce22dc62c35692d08405ea"
OTHER_SHA = "e7b5929755b760f301e10623f347a6f9ce507b9e"


def green_preflight(bot: Bot, db: str, *, sha: str, age: timedelta) -> None:
    """A preflight that succeeded ``age`` ago for RC ``sha``: every check it must run is green,
    recorded as the preflight step records its checks."""
    step = bot.engine.runbook.step("preflight")
    names = expected_checks(config_of(bot.settings.config), step.kind)
    finished = datetime.now(UTC) - age
    with psycopg.connect(db) as conn:
        exe = conn.execute(
            "INSERT INTO step_executions (run_id, step_id, attempt, state, params, requested_by,"
            " channel, started_at, finished_at) SELECT id, 'preflight', 1, 'succeeded', '{}',"
            " 'U_ALICE', 'C_CUTOVER', %s, %s FROM runs WHERE status = 'active'"
            " RETURNING id, run_id", (finished, finished)).fetchone()
        for name in names:
            conn.execute(
                "INSERT INTO preflight_results (run_id, execution_id, rc_sha, check_name, status,"
                " finding, finished_at) VALUES (%s, %s, %s, %s, 'ok', 'green', %s)",
                (exe[1], exe[0], sha, name, finished))


# ------------------------------------------------------------------ the preflight gate

def test_a_step_approved_on_a_fresh_preflight_does_not_start_once_it_went_stale(
        clean_db, tmp_path, toy):
    """bot/engine/claim.py: the gate is asked again when the worker claims the step."""
    bot = Bot(clean_db, tmp_path, config=BASE_CONFIG + toy.config(), worker=False)
    try:
        assert "started cutover run #1" in answer(bot, "alice", f"start v2 {RC_SHA}")
        green_preflight(bot, clean_db, sha=RC_SHA, age=timedelta(minutes=55))
        after = bot.seq()
        reply = answer(bot, "alice", "maintenance on")
        assert "Approval requested" in reply, f"a 55-minute-old green preflight opens the gate: " \
                                              f"{reply}"
        card = card_for(bot, "Maintenance mode on", after)
        bot.sandbox.click("bob", card, action_id=Action.APPROVE)
        bot.card_showing(card, "Approved by <@U_BOB>")
        # Six minutes pass before a worker is free: the approval is still in force (10 min),
        # but the preflight is now 61 minutes old, past `[preflight] max_age_minutes` (60).
        bot.clock.advance(minutes=6)  # the bot's injected clock
        assert bot.engine.run_next() is False, "a step behind a stale preflight must not run"
        shown = text_of(bot.card_showing(card, "cancelled"))
        assert "61 min old" in shown and "re-run `/golive preflight`" in shown, shown
    finally:
        bot.stop()
    assert toy.executions() == [], "the maintenance switch was flipped behind a stale preflight"
    assert rows(clean_db, "SELECT state FROM step_executions WHERE step_id = 'maintenance-on'"
                ) == [("cancelled",)]
    assert rows(clean_db, "SELECT outcome FROM audit_log WHERE action = 'step.cancelled'"
                ) == [("refused_preflight",)], "the refusal at claim time is audited"


def test_a_green_preflight_of_another_rc_does_not_open_the_gate(clean_db, tmp_path, toy):
    """bot/engine/preflight.py: only results recorded for this run's RC SHA count."""
    bot = Bot(clean_db, tmp_path, config=BASE_CONFIG + toy.config(), worker=False)
    try:
        answer(bot, "alice", f"start v2 {RC_SHA}")
        green_preflight(bot, clean_db, sha=OTHER_SHA, age=timedelta(minutes=1))
        reply = answer(bot, "alice", "maintenance on")
        assert "cannot start" in reply and f"no preflight result for RC sha `{RC_SHA[:12]}`" \
            in reply, reply
        assert "--override" in reply, "the refusal says how to go on anyway"
        status = answer(bot, "carol", "status")
        assert "Preflight* — green" not in status, status
    finally:
        bot.stop()
    assert rows(clean_db, "SELECT count(*) FROM approvals") == [(0,)], "nothing was requested"
    assert rows(clean_db, "SELECT count(*) FROM step_executions WHERE step_id = "
                          "'maintenance-on'") == [(0,)]


# ------------------------------------------------------------------ finish --abort

def test_finish_abort_is_refused_while_a_step_is_running(clean_db, tmp_path):
    """bot/engine/requests.py: --abort voids what waits, never what runs."""
    bot = Bot(clean_db, tmp_path, workspace=workspace(), worker=False)
    try:
        answer(bot, "alice", "start v2")
        # A step a live worker is running right now (fresh heartbeat).
        rows(clean_db, "INSERT INTO step_executions (run_id, step_id, attempt, state, params,"
                       " requested_by, channel, started_at, heartbeat_at) SELECT id, 'migrate',"
                       " 1, 'running', '{}', 'U_ALICE', 'C_CUTOVER', now(), now() FROM runs"
                       " WHERE status = 'active' RETURNING id")
        reply = answer(bot, "alice", 'finish --abort "the window closed"')
        assert "`migrate` is running" in reply and "never abandoned mid-way" in reply, reply
        assert "closed run #1" not in reply, reply
        assert "Cutover run #1" in answer(bot, "carol", "status")
    finally:
        bot.stop()
    assert rows(clean_db, "SELECT status FROM runs") == [("active",)], \
        "the run was closed under a running step"
    assert rows(clean_db, "SELECT state FROM step_executions") == [("running",)]
    assert rows(clean_db, "SELECT count(*) FROM audit_log WHERE action = 'run.finish'"
                ) == [(0,)]


# ------------------------------------------------------------------ Mark done

def test_a_failed_cutover_step_cannot_be_marked_done(clean_db, tmp_path):
    """bot/engine/recovery.py: Mark done is for an interrupted step (outcome unknown); a step
    that failed is retried, never recorded as succeeded. The button is only on interrupted
    notices, so the click is a tampered one naming the failed execution."""
    bot = Bot(clean_db, tmp_path, workspace=workspace(), worker=False)
    try:
        answer(bot, "alice", "start v2")
        failed = rows(clean_db, "INSERT INTO step_executions (run_id, step_id, attempt, state,"
                                " params, requested_by, channel, started_at, finished_at, error)"
                                " SELECT id, 'migrate', 1, 'failed', '{}', 'U_ALICE', 'C_CUTOVER',"
                                " now(), now(), 'alembic upgrade exited 1' FROM runs"
                                " WHERE status = 'active' RETURNING id")[0][0]
        notice = interrupted_notice(bot, clean_db, "health")

        def aim_at_failed(payload: dict) -> None:
            payload["actions"][0]["value"] = str(failed)
        uid = bot.workspace.user("bob").id
        bot.sandbox.click("bob", notice, action_id=Action.MARK_DONE, edit=aim_at_failed)
        view = bot.workspace.wait_for(lambda: (bot.workspace.open_views(uid) or [None])[0])
        mark = bot.seq()
        bot.sandbox.submit_view("bob", view.id, {Block.REASON: {Block.REASON_INPUT:
                                                                "looks fine to me"}})
        reply = text_of(bot.replies_to("bob", after=mark))
        assert "Only an interrupted step can be marked done" in reply, reply
        assert "failed cutover step is retried" in reply, reply
        status = answer(bot, "carol", "status")
        assert "marked done" not in status, status
    finally:
        bot.stop()
    assert rows(clean_db, "SELECT state FROM step_executions WHERE step_id = 'migrate'") == [
        ("failed",)], "a known failure was recorded as succeeded"
    assert rows(clean_db, "SELECT count(*) FROM approvals") == [(0,)]
    assert rows(clean_db, "SELECT count(*) FROM audit_log WHERE action = 'step.mark_done'"
                ) == [(0,)]


# ------------------------------------------------------------------ break-glass triggers

def test_break_glass_naming_a_trigger_the_runbook_does_not_have_is_refused(clean_db, tmp_path):
    """bot/engine/rollback.py: an id that merely starts like an allowed one (`security-…`,
    `ledger-…`) is not a manual declaration; the refusal lists the runbook's triggers."""
    bot = Bot(clean_db, tmp_path, workspace=workspace(), worker=False)
    try:
        answer(bot, "alice", "start v2")
        set_facts(clean_db, DEPLOYED)
        for made_up in ("security-made-up", "ledger-drift"):
            reply = answer(bot, "alice", f'rollback --break-glass "{LONG_REASON}" '
                                         f"--trigger {made_up}", channel="C_INCIDENT")
            assert "Break-glass refused" in reply, reply
            assert f"no rollback trigger '{made_up}' in the runbook" in reply, reply
            assert "security-incident" in reply, "the refusal names the triggers it knows"
    finally:
        bot.stop()
    assert rows(clean_db, "SELECT count(*) FROM approvals") == [(0,)], "no break-glass approval"
    assert rows(clean_db, "SELECT count(*) FROM step_executions") == [(0,)], "nothing queued"
    assert rows(clean_db, "SELECT count(*) FROM audit_log WHERE action = 'rollback.break_glass'"
                ) == [(0,)]


# ------------------------------------------------------------------ replays

def test_a_request_captured_minutes_ago_is_still_refused_by_a_fresh_replica(bot, clean_db,
                                                                           tmp_path):
    """bot/server.py: signatures are remembered for twice Slack's 5-minute window, so a
    request captured 4 minutes ago (its timestamp still accepted) cannot be replayed, even to
    a replica whose first request purges the old ones."""
    assert "started cutover run #1" in bot.command("alice", "start v1")
    captured = datetime.now(UTC) - timedelta(minutes=4)
    body, headers = signed_command(bot, "U_ALICE", "finish")
    headers.update(bot.sandbox.sign(body, captured.timestamp()))
    assert bot.sandbox.deliver(body, headers).status == 200
    bot.workspace.wait_for(lambda: "closed run #1" in text_of(
        bot.workspace.messages("C_CUTOVER")[-1]) or None, 10)
    # The database's clock cannot be moved: the request's row says when it arrived.
    rows(clean_db, "UPDATE inbox SET received_at = %s WHERE body = %s RETURNING id",
         captured, body)
    assert "started cutover run #2" in bot.command("alice", "start v2")

    (tmp_path / "replica-b").mkdir()
    other = Bot(clean_db, tmp_path / "replica-b", sandbox=bot.sandbox)
    try:
        bot.sandbox.bot_url = f"{other.http.url}/slack/events"
        replay = bot.sandbox.deliver(body, headers)
        assert replay.status == 401, "a request seen 4 minutes ago was forgotten and replayed"
    finally:
        bot.sandbox.bot_url = f"{bot.http.url}/slack/events"
        other.stop()
    assert rows(clean_db, "SELECT status FROM runs WHERE id = 2") == [("active",)], \
        "the replayed finish closed the next run"


# ------------------------------------------------------------------ URL-encoded secrets

ODD_PW = "Pw/with+odd&chars=42!"  # URL-encoding changes every one of its special characters


def test_a_secret_shown_url_encoded_is_masked(clean_db, tmp_path, toy):
    """runbook/adapters/redact.py: a switch that logs the URL it called shows the password
    URL-encoded; that form is a secret too."""
    from urllib.parse import quote

    encoded = quote(ODD_PW, safe="")
    assert encoded != ODD_PW
    leaky = tmp_path / "leaky-switch"
    leaky.write_text("#!/bin/sh\n"
                     f"echo 'GET https://psp.example/v1/session?user=admin&password={encoded}'\n"
                     "echo 'answered 502'\nexit 3\n")
    leaky.chmod(0o755)
    config = BASE_CONFIG + toy.config().replace(
        'on = ["sh", "-c", "echo on', f'on = ["{leaky}"]\n#') + """
[target.admin_login]
username = "admin"
password = "${PAYBOX_ADMIN_PASSWORD}"
"""
    bot = Bot(clean_db, tmp_path, config=config, env={"PAYBOX_ADMIN_PASSWORD": ODD_PW})
    try:
        bot.command("alice", "start v2")
        card = bot.request("alice", 'maintenance on --override "rehearsal"')
        bot.sandbox.click("bob", card, action_id=Action.APPROVE)
        shown = text_of(bot.card_showing(card, "failed"))
        assert "exited 3" in shown and "password=****" in shown, shown
    finally:
        bot.stop()
    ws = bot.workspace
    for form in (encoded, ODD_PW):
        leaks = ws.find_in_outgoing(form)
        assert not leaks, f"{form!r} reached Slack via {[c.method for c in leaks]}"
    blob = "".join(r[0] for r in rows(clean_db, "SELECT coalesce(error, '') || "
                                                "coalesce(progress, '') || coalesce(detail, '')"
                                                " FROM step_executions"))
    assert "exited 3" in blob and encoded not in blob, "stored unmasked in the step's record"


# ------------------------------------------------------------------ the inbox

class InboxRig:
    """The inbox as the door fills it and a handler drains it: the real Inbox on the bot's
    database (runtime role), each request's effect recorded when it is applied."""

    def __init__(self, db_url: str):
        from bot.inbox import Inbox
        from bot.store.db import Database
        from tests.support import pg

        self.db = Database(pg.runtime_url(db_url))
        self.db.open(wait=True)
        self.door_db = Database(pg.door_url(db_url))  # only the door role writes the inbox
        self.door_db.open(wait=True)
        self.inbox = Inbox(self.db)
        self.effects: list[bytes] = []

    def record(self, body: bytes) -> int:
        """As the door records a verified request (bot/server.py)."""
        from bot.store import repo

        with self.door_db.connection(autocommit=True) as conn:
            return repo.inbox_insert(conn, sig_key=body.hex(), kind="command",
                                     channel="C_CUTOVER", body=body, owner="")

    def handle(self, inbox_id: int, body: bytes):
        return self.inbox.handle(inbox_id, "C_CUTOVER", lambda: self.effects.append(body))

    def close(self) -> None:
        self.inbox.stop()
        self.door_db.close()
        self.db.close()


def test_a_request_already_handled_is_not_handled_again_when_redispatched(clean_db):
    """bot/inbox.py: a recovery may hand a request back to the app after its first handling
    committed (the owner looked gone, but finished): its effect must not happen twice."""
    from bot.inbox import Outcome

    reqs = InboxRig(clean_db)
    try:
        body = b"command=/golive&text=finish"
        done = reqs.record(body)
        assert reqs.handle(done, body) is Outcome.DONE
        assert reqs.handle(done, body) is Outcome.SKIPPED
    finally:
        reqs.close()
    assert reqs.effects == [body], "a handled request was handled again"
    assert rows(clean_db, "SELECT state FROM inbox") == [("done",)]


def test_a_request_dropped_after_a_database_failure_is_never_applied_late(clean_db):
    """bot/inbox.py: the person was told the database is not answering, so the request is
    marked dropped; a later redispatch of it must not apply it behind their back."""
    from bot.inbox import Outcome
    from bot.store.db import DatabaseUnavailable
    from tests.support.poll import wait_until

    def database_fails() -> None:
        raise DatabaseUnavailable("the database is not answering")
    reqs = InboxRig(clean_db)
    try:
        body = b'command=/golive&text=finish+--abort+"window+closed"'
        dropped = reqs.record(body)
        assert reqs.inbox.handle(dropped, "C_CUTOVER", database_fails) is Outcome.FAILED
        wait_until("the failed request to be marked dropped", lambda: rows(
            clean_db, "SELECT state FROM inbox WHERE id = %s", dropped) == [("dropped",)], 10)
        assert reqs.handle(dropped, body) is Outcome.SKIPPED
    finally:
        reqs.close()
    assert reqs.effects == [], "a request the person was told failed was applied late"
    assert rows(clean_db, "SELECT state FROM inbox") == [("dropped",)]
