"""A `golive serve` killed in the middle of a batch of `status` commands (bot/inbox.py
``handle_batch``): every command of the batch was handled in its savepoint and the batch waits
for the audit chain's head, held here, when the bot is SIGKILLed. Nothing of the batch was
committed or said; the next bot handles each command once: one audit row and one reply each,
none twice."""

from __future__ import annotations

from collections import Counter

import psycopg
import pytest

from tests.support.harness import text_of
from tests.support.pg import rows
from tests.support.poll import wait_until as until

pytestmark = pytest.mark.slow

CHANNEL = "C_CUTOVER"
ASKERS = ("alice", "bob", "carol", "alice", "bob")


def _status_audits(db: str) -> int:
    return len(rows(db, "SELECT 1 FROM audit_log WHERE action = 'command'"
                        " AND detail->>'text' = 'status'"))


def test_a_bot_killed_mid_batch_leaves_each_status_to_the_next_bot_answered_once(
        spawn, sandbox, clean_db):
    ws = sandbox.workspace
    a = spawn("a")
    assert sandbox.slash("carol", "status").status == 200  # one answered before: the bot is warm
    until("the first status answered", lambda: _status_audits(clean_db) == 1)
    ws.wait_for_message(CHANNEL, predicate=lambda m: m.via_response_url, timeout=10)
    after = ws.seq

    with psycopg.connect(clean_db) as hold:  # the chain's head, held: every batch waits on it
        hold.execute("SELECT last_id FROM audit_head FOR UPDATE")
        assert all(sandbox.slash(u, "status").status == 200 for u in ASKERS)
        until("each command handled in a batch that waits for the audit head", lambda: (
            not rows(clean_db, "SELECT 1 FROM inbox WHERE owner = ''")
            and rows(clean_db, "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                               " AND query LIKE '%%audit_head%%'")), 15)
        a.kill()
        hold.rollback()
    assert [m for m in ws.messages(CHANNEL, after_seq=after) if m.via_response_url] == [], \
        "a reply went out before its batch committed"
    assert _status_audits(clean_db) == 1, "part of the killed batch was committed"
    assert len(rows(clean_db, "SELECT 1 FROM inbox WHERE state = 'new'")) == len(ASKERS)

    spawn("b")
    until("the next bot answering every status of the killed batch",
          lambda: _status_audits(clean_db) == 1 + len(ASKERS), 30)
    until("every request done", lambda: not rows(
        clean_db, "SELECT 1 FROM inbox WHERE state <> 'done'"), 10)
    replies = [m for m in ws.messages(CHANNEL, after_seq=after) if m.via_response_url]
    assert Counter(m.ephemeral_to for m in replies) == Counter(
        ws.user(u).id for u in ASKERS), [(m.ephemeral_to, text_of(m)) for m in replies]
    assert all("No cutover run" in text_of(m) for m in replies)
    assert _status_audits(clean_db) == 1 + len(ASKERS), "a command was audited twice"
