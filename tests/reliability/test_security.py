"""Issue 13, 6: security. Forged and stale signatures, a click replayed after its approval
expired, and a click by someone who is not an approver. (The suite-wide secret scan is the
``secret_scan`` fixture in conftest.py.)"""

from __future__ import annotations

import time

import psycopg
import pytest

from bot.dev.sandbox.server import sign
from bot.dev.sandbox.workspace import User
from bot.ids import Action, Block
from tests.support.harness import text_of
from tests.support.signed import FORM, held, signed_headers

pytestmark = pytest.mark.slow

OVERRIDE = 'maintenance on --override "security test"'


def counts(db: str) -> tuple[int, int]:
    with psycopg.connect(db, autocommit=True) as conn:
        return tuple(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                     for t in ("inbox", "audit_log"))


def _outbox_idle(db: str) -> bool:
    with psycopg.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM outbox WHERE version > sent_version"
                            " OR due_at IS NOT NULL").fetchone()[0] == 0


def pending_card(bot):
    bot.command("alice", "start v2")
    return bot.request("alice", OVERRIDE)


def test_forged_and_stale_signatures_are_all_refused_and_change_nothing(toybot, clean_db):
    bot = toybot
    card = pending_card(bot)
    bot.sandbox.click("bob", card, action_id=Action.REJECT)  # opens the reason modal
    view = bot.workspace.wait_for(lambda: (bot.workspace.open_views("U_BOB") or [None])[0])
    kinds = {
        "command": held(bot.sandbox, lambda: bot.sandbox.slash("alice", "finish"))[0][0],
        "help": held(bot.sandbox, lambda: bot.sandbox.slash("alice", "help"))[0][0],
        "approve": held(bot.sandbox, lambda: bot.sandbox.click("bob", card,
                                                       action_id=Action.APPROVE))[0][0],
        "submission": held(bot.sandbox, lambda: bot.sandbox.submit_view(
            "bob", view.id, {Block.REASON: {Block.REASON_INPUT: "forged"}}))[0][0],
    }
    secret = bot.sandbox.signing_secret
    now = time.time()

    def forged(i: int, body: bytes) -> dict[str, str]:
        way = i % 5
        if way == 0:
            return sign("not-the-" + secret, body)                 # another app's secret
        if way == 1:
            return {**sign(secret, body), "X-Slack-Signature": "v0=" + f"{i:064x}"}
        if way == 2:
            return sign(secret, body + b"&x=1")                   # signed, then tampered
        if way == 3:
            h = sign(secret, body, now)
            return {"X-Slack-Request-Timestamp": str(int(now) + 1),
                    "X-Slack-Signature": h["X-Slack-Signature"]}  # moved to another second
        return {"X-Slack-Request-Timestamp": str(int(now))}       # no signature at all

    # the run card's paced update for the request above may still be on its way: let the
    # outbox drain first, so what is counted below is only what the refused requests caused
    bot.workspace.wait_for(lambda: _outbox_idle(clean_db), 30)
    before, seq, calls = counts(clean_db), bot.seq(), len(bot.workspace.api_calls)
    answers: dict[str, list[int]] = {"forged": [], "stale": []}
    names = list(kinds)
    for i in range(200):
        body = kinds[names[i % len(names)]]
        answers["forged"].append(bot.sandbox.deliver(
            body, {"Content-Type": FORM, **forged(i, body)}).status)
        stale = sign(secret, body, now - 6 * 60 - i)  # correctly signed, 6+ minutes old
        answers["stale"].append(bot.sandbox.deliver(body, {"Content-Type": FORM, **stale}).status)
    refused = {k: sum(s == 401 for s in v) for k, v in answers.items()}
    print(f"\nsecurity: forged {refused['forged']}/200 refused, stale {refused['stale']}/200 "
          f"refused, over {', '.join(names)}")
    assert refused == {"forged": 200, "stale": 200}, \
        f"not every bad signature got 401: {[(k, i, s) for k, v in answers.items() for i, s in enumerate(v) if s != 401]}"
    # Each refusal is at the door: nothing reached the inbox, the audit log or Slack.
    assert counts(clean_db) == before, "a refused request left an inbox or audit row"
    assert bot.seq() == seq and len(bot.workspace.api_calls) == calls, \
        "a refused request made the bot say or do something in Slack"
    # The same bodies, correctly signed now, are served: the refusals were about signatures.
    ok = bot.sandbox.deliver(kinds["help"], signed_headers(bot.sandbox, kinds["help"]))
    assert ok.status == 200, f"a correctly signed help answered {ok.status}"


def test_an_approve_replayed_after_its_approval_expired_is_refused_both_ways(toybot, clean_db,
                                                                             toy):
    bot = toybot
    card = pending_card(bot)
    # Bob's Approve, captured on the wire and held back until the approval has expired.
    [(body, headers)] = held(bot.sandbox, lambda: bot.sandbox.click("bob", card,
                                                            action_id=Action.APPROVE))
    bot.clock.advance(minutes=16)  # the bot's injected clock
    assert bot.engine.expire_approvals() == 1
    expired = bot.card_showing(card, "Expired")

    # 1. The captured bytes, first seen now (a held request): the expired approval refuses it.
    mark = bot.seq()
    first = bot.sandbox.deliver(body, headers)
    assert first.status == 200, f"the click answered {first.status}"
    said = text_of(bot.replies_to("bob", after=mark, timeout=15))
    assert "expired" in said.lower(), f"bob must be told the request expired: {said}"
    # 2. The same bytes again: the replay guard refuses them at the door.
    before = counts(clean_db)
    again = bot.sandbox.deliver(body, headers)
    assert again.status == 401, f"a replayed click must get 401, got {again.status}"
    assert counts(clean_db) == before, "a replayed click left an inbox or audit row"
    # 3. Re-signed fresh (a new signature, so the replay guard cannot know it): still refused.
    mark = bot.seq()
    later = max(time.time(), int(headers["X-Slack-Request-Timestamp"]) + 1)
    fresh = bot.sandbox.deliver(body, {**headers, **bot.sandbox.sign(body, later)})
    assert fresh.status == 200
    said = text_of(bot.replies_to("bob", after=mark, timeout=15))
    assert "expired" in said.lower(), f"a re-signed click must be refused as expired: {said}"
    with psycopg.connect(clean_db, autocommit=True) as conn:
        rows = conn.execute("SELECT actor, action, outcome FROM audit_log WHERE action ="
                            " 'approval.approve' ORDER BY id").fetchall()
    assert rows == [("U_BOB", "approval.approve", "already_decided")] * 2, rows
    assert toy.executions() == [], "an expired approval ran its step"
    assert "Expired" in text_of(bot.workspace.message("C_CUTOVER", expired.ts))
    print(f"\nsecurity: replayed click after expiry -> {again.status} (replay guard); "
          f"re-signed -> refused as expired, {len(rows)} audited")


def test_a_click_by_someone_who_is_not_an_approver_is_refused_and_audited(toybot, clean_db,
                                                                           toy):
    bot = toybot
    # Frank is a full member of the workspace, in no approver group.
    bot.workspace.users["U_FRANK"] = User(id="U_FRANK", name="frank", real_name="Frank Full")
    card = pending_card(bot)
    mark = bot.seq()
    assert bot.sandbox.click("frank", card, action_id=Action.APPROVE).status == 200
    said = text_of(bot.replies_to("frank", after=mark, timeout=15))
    assert "not an approver" in said, f"frank must be told why: {said}"
    with psycopg.connect(clean_db, autocommit=True) as conn:
        rows = conn.execute("SELECT action, outcome FROM audit_log WHERE actor = 'U_FRANK'"
                            ).fetchall()
    assert ("approval.approve", "not_an_approver") in rows, f"no audited refusal: {rows}"
    now = text_of(bot.workspace.message("C_CUTOVER", card.ts))
    assert "Approved by" not in now and toy.executions() == [], "frank's click approved it"
    print(f"\nsecurity: non-approver click refused and audited: {rows}")

