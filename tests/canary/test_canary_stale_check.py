"""A slow ledger check of a reference someone already corrected must not overwrite the newer
report's result (issue 23). The canary is opened and shown through the real bot and the
sandbox, over paybox's own ledger; the two reports and their checks are the canary room's own
calls (the ones the report modal and its background check make), run in the order a slow
first check produces: report A, report B, A's check lands, B's check lands."""

from __future__ import annotations

import uuid

import psycopg

from tests.canary.conftest import PayboxApp
from tests.canary.test_canary_slack import (  # noqa: F401 - fixtures
    account,
    canary_bot,
    in_thread,
    open_canary,
)
from tests.support.harness import Bot, text_of


def deposit_item(db: str) -> tuple[str, str]:
    with psycopg.connect(db) as conn:
        row = conn.execute("SELECT state::jsonb #>> '{items,deposit,status}',"
                           " state::jsonb #>> '{items,deposit,reference}' FROM canaries"
                           ).fetchone()
    return row[0], row[1]


def test_a_slow_check_of_a_corrected_reference_does_not_overwrite_the_newer_report(
        canary_bot: Bot, clean_db: str, paybox_app: PayboxApp, account: str):  # noqa: F811
    bot = canary_bot
    msg, _ = open_canary(bot, clean_db)
    real = f"dep-{uuid.uuid4().hex[:8]}"
    paybox_app.deposit(account, 1000, real)
    paybox_app.webhook("deposit.succeeded", real)
    with psycopg.connect(clean_db) as conn:
        canary_id = conn.execute("SELECT id FROM canaries").fetchone()[0]
    room = bot.runtime.canary

    typo = f"dep-{uuid.uuid4().hex[:8]}"  # alice mistyped it: the ledger has no such deposit
    slow = room.report(canary_id, "deposit", typo, "10.00", "U_ALICE")
    newer = room.report(canary_id, "deposit", real, "10.00", "U_ALICE")
    assert slow is not None and newer is not None
    assert deposit_item(clean_db) == ("checking", real)

    room.run_verify(canary_id, slow)  # the typo's check, slow, lands after the correction
    assert deposit_item(clean_db) == ("checking", real), \
        "the old reference's result overwrote the newer report"
    room.run_verify(canary_id, newer)
    assert deposit_item(clean_db) == ("ok", real)

    ok = in_thread(bot, msg, "Deposit:")
    assert "✅" in text_of(ok) and "0.00 USD → 10.00 USD" in text_of(ok), text_of(ok)
    bot.card_showing(msg, "✅ Deposit")
    said = [text_of(m) for m in bot.workspace.thread("C_CUTOVER", msg.ts)]
    assert not [t for t in said if f"unknown reference `{typo}`" in t], said
