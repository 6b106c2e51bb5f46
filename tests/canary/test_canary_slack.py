"""The canary driven from Slack, end to end: a real bot (tests/support/harness.py) behind the
sandbox, and paybox on the host over a throwaway ledger (tests/canary/conftest.py), so every
ledger row and webhook log line is written by paybox's own endpoints. Everything is asserted
as people in the channel see it: the canary message, its thread, the uploaded files.

The run's earlier steps (deploy … traffic open) need Docker; the tests record ``traffic-open``
as succeeded directly in the bot's database, as the cutover so far.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bot.dev.sandbox.workspace import Message
from bot.ids import Action, Block
from tests.canary.conftest import PayboxApp
from tests.support.harness import BASE_CONFIG, BOT_TOKEN, SIGNING_SECRET, Bot, text_of
from tests.support.paybox_target import paybox_canary_queries, toml_value

CH = "C_CUTOVER"
# bob signs for engineering; the approvers group (bob, carol) for finance; alice, the
# operator who opens the canary, is no signer
ROLES = """
[canary.roles.engineering]
users = ["U_BOB"]

[canary.roles.finance]
groups = ["S_APPROVERS"]
"""
# only alice and bob sign, one signature is enough: the opener rule is the only obstacle
OPENER_ROLES = """
required_signoffs = 1

[canary.roles.engineering]
users = ["U_ALICE", "U_BOB"]
"""


def config(app: PayboxApp, account: str, roles: str = ROLES) -> str:
    return BASE_CONFIG + f"""
[target]
name = "paybox"
public_url = "{app.url}"
internal_url = "{app.url}"

[target.migrations]
database_url = "{app.database_url}"

[watches.webhooks.logs]
kind = "file"
path = "{app.log}"

[watches.error_budget.logs]
kind = "file"
path = "{app.log}"

[canary]
account = "{account}"
queries = {toml_value(paybox_canary_queries())}
{roles}
"""


@pytest.fixture
def account() -> str:
    return f"canary-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def canary_bot(clean_db: str, tmp_path: Path, paybox_app: PayboxApp, account: str):
    b = Bot(clean_db, tmp_path, config=config(paybox_app, account))
    yield b
    b.stop()


def traffic_opened(db_url: str) -> None:
    """The cutover so far: the active run's `traffic-open` succeeded (needs Docker for real)."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO step_executions (run_id, step_id, attempt, state, requested_by, channel,"
            " created_at, started_at, finished_at, summary) SELECT id, 'traffic-open', 1,"
            " 'succeeded', 'U_ALICE', %s, now(), now(), now(), 'traffic open'"
            " FROM runs WHERE status = 'active'", (CH,))


def public(m: Message) -> bool:
    return m.ephemeral_to is None


def open_canary(bot: Bot, db_url: str) -> tuple[Message, Message]:
    """alice starts a run and opens the canary; the canary message and its sign-off reply."""
    assert "v2" in bot.command("alice", "start v2")
    traffic_opened(db_url)
    after = bot.seq()
    answer = bot.command("alice", "canary")
    assert "Canary opened" in answer, f"/golive canary did not open it: {answer}"
    msg = bot.workspace.wait_for_message(CH, contains="Report deposit", after_seq=after,
                                         predicate=public)
    for want in ("Deposit", "Withdraw", "Ledger check", "Webhook evidence", "Error budget",
                 "Sign-off", "10.00 USD"):
        assert want in text_of(msg), f"the checklist lacks {want!r}: {text_of(msg)}"
    signoff = in_thread(bot, msg, "Sign-off", after=after)
    return msg, signoff


def in_thread(bot: Bot, parent: Message, contains: str, *, after: int = 0,
              timeout: float = 20.0) -> Message:
    """Wait for a reply in ``parent``'s thread containing ``contains``."""
    return bot.workspace.wait_for_message(
        CH, contains=contains, after_seq=after, timeout=timeout,
        predicate=lambda m: public(m) and m.thread_ts == parent.ts and m.ts != parent.ts)


def modal(bot: Bot, uid: str) -> Any:
    return bot.workspace.wait_for(lambda: (bot.workspace.open_views(uid) or [None])[0])


def report(bot: Bot, msg: Message, user: str, uid: str, item: str, ref: str,
           amount: str | None) -> int:
    """Click Report …, fill the modal, submit; returns the seq before the submission."""
    action = Action.CANARY_DEPOSIT if item == "deposit" else Action.CANARY_WITHDRAWAL
    assert bot.sandbox.click(user, msg, action_id=action).status == 200
    view = modal(bot, uid)
    after = bot.seq()
    values = {Block.CANARY_REFERENCE: {Block.CANARY_REFERENCE_INPUT: ref}}
    if amount is not None:
        values[Block.CANARY_AMOUNT] = {Block.CANARY_AMOUNT_INPUT: amount}
    assert bot.sandbox.submit_view(user, view.id, values).status == 200
    return after


def sign(bot: Bot, signoff: Message, user: str, uid: str, note: str = "") -> int:
    assert bot.sandbox.click(user, signoff, action_id=Action.CANARY_SIGN).status == 200
    view = modal(bot, uid)
    after = bot.seq()
    bot.sandbox.submit_view(user, view.id, {Block.CANARY_NOTE: {Block.CANARY_NOTE_INPUT: note}})
    return after


def money_moved(bot: Bot, app: PayboxApp, msg: Message, account: str, *,
                payout_cents: int = 1000, moved: str = "0.00 USD → 10.00 USD"
                ) -> tuple[str, str]:
    """Deposit $10 and withdraw through paybox, with their webhooks; report the deposit."""
    dep, pay = f"dep-{uuid.uuid4().hex[:8]}", f"pay-{uuid.uuid4().hex[:8]}"
    app.deposit(account, 1000, dep)
    app.webhook("deposit.succeeded", dep)
    after = report(bot, msg, "alice", "U_ALICE", "deposit", dep, "10.00")
    ok = in_thread(bot, msg, "Deposit:", after=after)
    assert "✅" in text_of(ok) and moved in text_of(ok), text_of(ok)
    app.payout(account, payout_cents, pay)
    app.webhook("payout.settled", pay)
    return dep, pay


def test_happy_path_to_go_with_report_file_and_chart(canary_bot: Bot, clean_db: str,
                                                     paybox_app: PayboxApp, account: str):
    bot, ws = canary_bot, canary_bot.workspace
    msg, signoff = open_canary(bot, clean_db)
    dep, pay = money_moved(bot, paybox_app, msg, account)
    after = report(bot, msg, "alice", "U_ALICE", "withdrawal", pay, "$10")
    w = in_thread(bot, msg, "Withdraw:", after=after)
    assert "✅" in text_of(w) and "10.00 USD → 0.00 USD" in text_of(w), text_of(w)
    for title in ("Ledger check:", "Webhook evidence:", "Error budget:"):
        reply = in_thread(bot, msg, title, after=after)
        assert "✅" in text_of(reply), f"{title} did not pass: {text_of(reply)}"
    after = sign(bot, signoff, "bob", "U_BOB", note="ledger matches")
    assert "still needed: 1 finance" in text_of(in_thread(bot, msg, "Signed by", after=after))
    after = sign(bot, signoff, "carol", "U_CAROL")
    final = in_thread(bot, msg, "*GO*", after=after)
    assert "<@U_BOB> (engineering)" in text_of(final) and "<@U_CAROL> (finance)" in \
        text_of(final), f"the GO does not say who signed: {text_of(final)}"
    bot.card_showing(msg, "Canary: GO")

    report_file = ws.wait_for(lambda: next((f for f in ws.files.values()
                                            if f.name.endswith(".md") and f.content), None), 20)
    chart = ws.wait_for(lambda: next((f for f in ws.files.values()
                                      if f.name.endswith(".png") and f.content), None), 20)
    assert chart.content[:8] == b"\x89PNG\r\n\x1a\n", "the chart is not a PNG"
    text = report_file.content.decode()
    for want in (dep, pay, "# Canary report: GO", "0.00 USD → 10.00 USD",
                 "10.00 USD → 0.00 USD", account, "`v2`", "ledger matches",
                 "Signature Verified", "canary-chart-run1.png"):
        assert want in text, f"the uploaded report lacks {want!r}:\n{text}"
    # people by the names Slack shows (a file renders no <@U…>), their user ids beside them
    for want in ("| @bob (U_BOB) | engineering | sign |", "| @carol (U_CAROL) | finance |",
                 "by @alice (U_ALICE)"):
        assert want in text, f"the uploaded report lacks {want!r}:\n{text}"
    assert "<@U" not in text, text
    # the webhook line lists the canary's two references and nothing else
    hooks = text.split("## Webhooks", 1)[1].split("\n## ", 1)[0]
    listed = [ln for ln in hooks.splitlines() if ln.startswith("- `")]
    assert listed == [f"- `{dep}`: 1 Signature Verified, 0 failed",
                      f"- `{pay}`: 1 Signature Verified, 0 failed"], hooks
    summary = in_thread(bot, msg, "Canary GO", after=after)
    assert len(text_of(summary)) < 3000

    status = bot.command("alice", "status")
    assert "Canary" in status and "GO" in status and "<@U_CAROL>" in status, status
    with psycopg.connect(clean_db, autocommit=True) as conn:
        rows = conn.execute("SELECT outcome FROM audit_log WHERE action = 'canary.decided'"
                            ).fetchall()
        stored = conn.execute("SELECT report FROM canaries").fetchone()
        signed = conn.execute("SELECT detail->'signatures' FROM audit_log"
                              " WHERE action = 'canary.decided'").fetchone()[0]
    assert rows == [("GO",)], f"the decision is not in the audit log: {rows}"
    assert {s["user"] for s in signed} == {"U_BOB", "U_CAROL"}, "the audit keeps the user ids"
    assert stored and dep in stored[0], "the report is not stored with the run"
    for secret in (paybox_app.database_url, BOT_TOKEN, SIGNING_SECRET):
        leaks = ws.find_in_outgoing(secret)
        assert not leaks, f"a secret reached Slack via {[c.method for c in leaks]}"
        assert secret not in text and all(secret not in (f.content or b"").decode("latin-1")
                                          for f in ws.files.values()), "secret in a file"


def test_wrong_withdrawal_amount_is_a_failure_with_numbers_and_can_be_retried(
        canary_bot: Bot, clean_db: str, paybox_app: PayboxApp, account: str):
    bot = canary_bot
    paybox_app.deposit(account, 5000, f"seed-{uuid.uuid4().hex[:6]}")  # an earlier balance
    msg, _ = open_canary(bot, clean_db)
    _, pay = money_moved(bot, paybox_app, msg, account, payout_cents=1200,
                         moved="50.00 USD → 60.00 USD")
    after = report(bot, msg, "alice", "U_ALICE", "withdrawal", pay, "ten")
    bad = in_thread(bot, msg, "not an amount", after=after)
    assert "try again" in text_of(bad), text_of(bad)
    after = report(bot, msg, "alice", "U_ALICE", "withdrawal", pay, "12.00")
    w = in_thread(bot, msg, "Withdraw:", after=after)
    for want in ("❌", "is 12.00 USD; the canary payout is 10.00 USD",
                 "available fell by 12.00 USD (60.00 USD → 48.00 USD); expected 10.00 USD"):
        assert want in text_of(w), f"the failure does not show {want!r}: {text_of(w)}"
    # reporting again is checked again (here: a mistyped reference)
    after = report(bot, msg, "alice", "U_ALICE", "withdrawal", "no-such-payout", None)
    unknown = in_thread(bot, msg, "Withdraw:", after=after)
    assert "unknown reference `no-such-payout`" in text_of(unknown), text_of(unknown)
    bot.card_showing(msg, "❌ Withdraw")


def test_reject_is_no_go_and_offers_rollback(canary_bot: Bot, clean_db: str):
    bot = canary_bot
    msg, signoff = open_canary(bot, clean_db)
    assert bot.sandbox.click("carol", signoff, action_id=Action.CANARY_REJECT).status == 200
    view = modal(bot, "U_CAROL")
    after = bot.seq()
    bot.sandbox.submit_view("carol", view.id, {Block.REASON: {Block.REASON_INPUT:
                                                              "payout webhook missing"}})
    final = in_thread(bot, msg, "*NO-GO*", after=after)
    assert "<@U_CAROL>" in text_of(final) and "payout webhook missing" in text_of(final)
    bot.card_showing(msg, "Canary: NO-GO")
    assert "NO-GO" in bot.command("alice", "status")
    after = bot.seq()
    assert bot.sandbox.click("alice", final, action_id=Action.CANARY_ROLLBACK).status == 200
    answer = bot.replies_to("alice", after=after, contains="Rollback")
    assert "Rollback requested" in text_of(answer), text_of(answer)


def test_a_non_signer_is_refused(canary_bot: Bot, clean_db: str):
    bot = canary_bot
    msg, signoff = open_canary(bot, clean_db)
    after = sign(bot, signoff, "alice", "U_ALICE")
    reply = in_thread(bot, msg, "not a signer", after=after)
    assert "`engineering` or `finance`" in text_of(reply), text_of(reply)
    with psycopg.connect(clean_db, autocommit=True) as conn:
        n = conn.execute("SELECT count(*) FROM canaries WHERE state::jsonb -> 'signatures' = '[]'"
                         ).fetchone()[0]
    assert n == 1, "the refused signature was recorded"


def test_the_opener_alone_is_not_enough(clean_db: str, tmp_path: Path, paybox_app: PayboxApp,
                                        account: str):
    bot = Bot(clean_db, tmp_path, config=config(paybox_app, account, OPENER_ROLES))
    try:
        msg, signoff = open_canary(bot, clean_db)
        _, pay = money_moved(bot, paybox_app, msg, account)
        after = report(bot, msg, "alice", "U_ALICE", "withdrawal", pay, "10")
        in_thread(bot, msg, "Error budget:", after=after)
        after = sign(bot, signoff, "alice", "U_ALICE")
        alone = in_thread(bot, msg, "Signed by", after=after)
        assert "a signer other than the opener" in text_of(alone), text_of(alone)
        after = sign(bot, signoff, "bob", "U_BOB")
        in_thread(bot, msg, "*GO*", after=after)
    finally:
        bot.stop()


def test_restart_mid_canary_resumes_the_interrupted_check(clean_db: str, tmp_path: Path,
                                                          paybox_app: PayboxApp, account: str):
    cfg = config(paybox_app, account)
    bot = Bot(clean_db, tmp_path, config=cfg)
    try:
        msg, signoff = open_canary(bot, clean_db)
        dep = f"dep-{uuid.uuid4().hex[:8]}"
        paybox_app.deposit(account, 1000, dep)
    finally:
        bot.stop()
    # the bot died after "Checking…" was committed, before the ledger check ran
    with psycopg.connect(clean_db, autocommit=True) as conn:
        conn.execute("""UPDATE canaries SET state = jsonb_set(state::jsonb, '{items,deposit}',
            (state::jsonb #> '{items,deposit}') || jsonb_build_object('status', 'checking',
             'reference', %s::text, 'attempts', 1))::json""", (dep,))
    again = Bot(clean_db, tmp_path, config=cfg, workspace=bot.workspace)
    try:
        ok = in_thread(again, msg, "Deposit:")
        assert "✅" in text_of(ok) and "0.00 USD → 10.00 USD" in text_of(ok), text_of(ok)
        again.card_showing(msg, "✅ Deposit")
        assert again.sandbox.click("bob", signoff, action_id=Action.CANARY_SIGN).status == 200
        assert modal(again, "U_BOB") is not None, "the sign-off buttons died with the old bot"
    finally:
        again.stop()
