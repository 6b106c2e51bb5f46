"""Read-only requests handled in batches (bot/inbox.py ``handle_batch``, bot/handoff.py): one
transaction and one commit for the batch, a savepoint per request, each request's audit row
and reply its own, the replies only after the commit.

The guard against losing the batching is not a timing: the audit rows of N `status` commands
claimed together carry one transaction id (``xmin``), i.e. one commit, one WAL flush and one
hold of the audit chain's head served all of them."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg.rows import dict_row

from bot.engine.audit_trail import AuditTrail
from bot.handoff import Handoff
from bot.inbox import Inbox, Outcome
from bot.store import repo
from bot.store.db import Database
from tests.support.harness import Bot
from tests.support.pg import rows

T0 = datetime(2026, 12, 8, 1, 0, tzinfo=UTC)
KEY = b"k" * 32


@pytest.fixture
def db(runtime_db):
    d = Database(runtime_db)
    d.open(wait=True)
    yield d
    d.close()


def _status_rows(door_db: str, n: int) -> list[int]:
    """``n`` recorded `/golive status` commands, as the door writes them."""
    request = json.dumps({"text": "status", "problem": None, "invocation": {
        "name": "status", "words": [], "override": None, "raw": "status"}})
    with psycopg.connect(door_db, autocommit=True, row_factory=dict_row) as conn:
        return [repo.inbox_insert(conn, sig_key=f"k{i}", kind="command", channel="C1",
                                  body=b"command=%2Fgolive&text=status", owner="",
                                  request=request) for i in range(n)]


def test_a_batch_commits_once_and_a_failure_rolls_back_only_its_own_request(db, door_db,
                                                                            clean_db):
    ids = _status_rows(door_db, 5)
    inbox = Inbox(db)
    claimed = inbox.claim(0, read_only=10)
    assert [r["id"] for r in claimed] == ids and all(r["read_only"] for r in claimed)
    told: list[int] = []
    outcomes: dict[int, Outcome] = {}
    trail = AuditTrail(db=db, key=KEY, now=lambda: T0, mask=lambda v: v)

    def run(row: dict) -> None:
        def work() -> None:
            with db.transaction() as conn:  # the engine's call: joins the request's savepoint
                trail.record(conn, actor="U1", action="command", outcome="ok",
                             detail={"inbox": row["id"]})  # appended just before the commit
            if row["id"] == ids[2]:
                raise RuntimeError("this request's handling fails after its audit row")
        try:
            outcomes[row["id"]] = inbox.handle(row["id"], None, work)
        except RuntimeError:
            return  # as Bolt's runner does: logged, no reply
        inbox.after_commit(lambda: told.append(row["id"]))

    replies, again = inbox.handle_batch(claimed, run)
    assert again == [], "the database did not fail: nothing is handed over again"
    assert told == [], "a reply went out before the batch committed"
    for fn in replies:
        fn()
    ok = [i for i in ids if i != ids[2]]
    assert told == ok, "each request handled gets its own reply, once"
    assert all(outcomes[i] is Outcome.DONE for i in ok)
    audit = rows(clean_db, "SELECT *, xmin::text AS tx FROM audit_log ORDER BY id")
    assert [r["detail"]["inbox"] for r in audit] == ok, "one audit row per request handled"
    assert len({r["tx"] for r in audit}) == 1, "the batch committed more than once"
    assert [r["id"] for r in audit] == list(range(1, 5))
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(audit)), \
        "the batch's rows are not linked one to the next"
    states = {r["id"]: r["state"] for r in rows(clean_db, "SELECT id, state FROM inbox")}
    assert states == {**{i: "done" for i in ok}, ids[2]: "new"}, \
        "the failed request's savepoint (its done mark) rolled back, and only it"
    assert inbox.in_flight() == 0


def test_a_batch_the_database_fails_commits_nothing_says_nothing_and_hands_each_back(
        db, door_db, clean_db):
    ids = _status_rows(door_db, 3)
    inbox = Inbox(db)
    claimed = inbox.claim(0, read_only=10)
    told: list[int] = []

    def run(row: dict) -> None:
        def work() -> None:
            with db.transaction() as conn:
                repo.append_audit(conn, key=KEY, now=T0, actor="U1", action="command",
                                  outcome="ok")
                if row["id"] == ids[1]:  # the connection is cut under the second request
                    with psycopg.connect(clean_db, autocommit=True) as admin:
                        admin.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))
                    conn.execute("SELECT 1")
        outcome = inbox.handle(row["id"], None, work)
        assert outcome is not Outcome.FAILED, "a batch's request says nothing on its own"
        inbox.after_commit(lambda: told.append(row["id"]))

    replies, again = inbox.handle_batch(claimed, run)
    assert replies == [] and told == [], "a reply for a batch that did not commit"
    assert [r["id"] for r in again] == ids, "every request of the batch is handed back"
    assert inbox.in_flight() == 3, "handed back, they are this process's, in flight"
    assert rows(clean_db, "SELECT * FROM audit_log") == []
    assert {r["state"] for r in rows(clean_db, "SELECT state FROM inbox")} == {"new"}


def test_status_commands_claimed_together_are_answered_each_once_after_one_commit(
        clean_db, tmp_path):
    bot = Bot(clean_db, tmp_path)
    try:
        bot.runtime.handoff.stop()  # the test claims, so that all of them are claimed at once
        ws = bot.workspace
        after = bot.seq()
        sent = [bot.slash(u, "status") for u in ("alice", "bob", "carol", "alice", "bob")]
        sent.append(bot.slash("carol", "help"))  # answered in its ack; its lazy half audits
        assert all(d.status == 200 for d in sent)
        assert len(rows(clean_db, "SELECT 1 FROM inbox WHERE state = 'new'")) == 6
        handoff = Handoff(bot.runtime.inbox, bot.runtime.redispatch)
        assert handoff.pump() == 6
        assert handoff.drain(20), "the batch did not finish"
        handoff.stop()
        replies = [m for m in ws.messages("C_CUTOVER", after_seq=after) if m.via_response_url]
        who = Counter(m.ephemeral_to for m in replies)
        assert who == {ws.user("alice").id: 2, ws.user("bob").id: 2, ws.user("carol").id: 1}, \
            "each status answered once, to the one who asked"
        assert all("No cutover run" in (m.text or "") for m in replies)
        audit = rows(clean_db, "SELECT detail->>'text' AS text, xmin::text AS tx"
                               " FROM audit_log WHERE action = 'command'")
        assert sorted(r["text"] for r in audit) == ["help"] + ["status"] * 5
        assert len({r["tx"] for r in audit}) == 1, \
            "six read-only commands claimed together took more than one commit"
        assert not rows(clean_db, "SELECT 1 FROM inbox WHERE state <> 'done'")
    finally:
        bot.stop()
