"""The outbox's write side and claim rules, on a real PostgreSQL (as the bot's runtime role)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg.rows import dict_row

from bot.outbox import Outbox, store

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> datetime:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)


@pytest.fixture
def conn(runtime_db):
    with psycopg.connect(runtime_db, row_factory=dict_row, autocommit=True) as c:
        yield c


@pytest.fixture
def clock():
    return Clock()


def touch(conn, outbox, key="card:exe:1", **kw):
    with conn.transaction():
        outbox.touch(conn, key=key, channel="C1", **kw)


def at(row) -> float:
    return (row["due_at"] - T0).total_seconds()


def test_a_new_message_is_due_at_once_and_later_touches_coalesce_into_it(conn, clock):
    outbox = Outbox(now=clock)
    touch(conn, outbox)
    assert at(store.get(conn, "card:exe:1")) == pytest.approx(0.0), \
        "a message's first post has nothing to coalesce with: no debounce"
    clock.advance(0.05)
    touch(conn, outbox)
    row = store.get(conn, "card:exe:1")
    assert row["version"] == 2, "a second touch must bump the version of the same row"
    assert at(row) == pytest.approx(0.0), "a later touch must not push a pending update back"


def posted(conn, clock, key="card:exe:1", *, updated: bool) -> None:
    """The sender delivered ``key`` now (an update if ``updated``, else its first post)."""
    with conn.transaction():
        (row,) = store.claim(conn, me="a", now=clock(), lease=60, limit=1)
        assert row["key"] == key
        store.complete(conn, row, me="a", now=clock(), ts="1.1", updated=updated,
                       min_interval=1.0)


def test_an_update_is_debounced_and_a_final_one_is_not(conn, clock):
    outbox = Outbox(now=clock)
    touch(conn, outbox)
    posted(conn, clock, updated=False)
    clock.advance(5)
    touch(conn, outbox)  # e.g. the approval's vote: more may follow at once
    assert at(store.get(conn, "card:exe:1")) == pytest.approx(5.1), \
        "an update of a posted message must wait out the debounce"
    touch(conn, outbox, final=True)  # the step's result
    assert at(store.get(conn, "card:exe:1")) == pytest.approx(5.0), \
        "a final touch must not wait for the debounce"


def test_a_final_touch_still_waits_a_second_after_the_last_update(conn, clock):
    outbox = Outbox(now=clock)
    touch(conn, outbox)
    posted(conn, clock, updated=False)
    clock.advance(2)
    touch(conn, outbox)
    clock.advance(0.1)
    posted(conn, clock, updated=True)  # an update at 2.1
    clock.advance(0.3)
    touch(conn, outbox, final=True)
    assert at(store.get(conn, "card:exe:1")) == pytest.approx(3.1), \
        "Slack allows one chat.update per second per message, final or not"


def test_a_final_touch_brings_a_delayed_one_forward(conn, clock):
    outbox = Outbox(now=clock)
    touch(conn, outbox, delay=1.0)  # "running", shown only if it lasts a second
    assert at(store.get(conn, "card:exe:1")) == pytest.approx(1.0), \
        "a first touch with a delay keeps its delay"
    clock.advance(0.2)
    touch(conn, outbox, final=True)  # the quick step's result: one post, at once
    assert at(store.get(conn, "card:exe:1")) == pytest.approx(0.2)


def test_a_delayed_touch_pushes_back_and_a_plain_one_brings_forward(conn, clock):
    outbox = Outbox(now=clock)
    touch(conn, outbox)
    touch(conn, outbox, delay=1.0)  # "running": shown only if it lasts a second
    assert at(store.get(conn, "card:exe:1")) == pytest.approx(1.0), \
        "the delayed touch must hold the pending update back"
    clock.advance(0.3)
    touch(conn, outbox)  # the step finished: its result goes out now, not after the delay
    assert at(store.get(conn, "card:exe:1")) == pytest.approx(0.4), \
        "a plain touch must bring a delayed update forward"


def test_never_due_within_a_second_of_the_last_update(conn, clock):
    outbox = Outbox(now=clock)
    touch(conn, outbox)
    conn.execute("UPDATE outbox SET ts = '1.1', due_at = NULL, last_update_at = %s", (clock(),))
    clock.advance(0.2)
    touch(conn, outbox)
    assert at(store.get(conn, "card:exe:1")) == pytest.approx(1.0), \
        "an update must wait a second after the message's previous update"


def test_a_touch_rolls_back_with_the_state_change(conn, clock):
    outbox = Outbox(now=clock)
    with pytest.raises(RuntimeError), conn.transaction():
        outbox.touch(conn, key="card:exe:9", channel="C1")
        raise RuntimeError("the state change failed")
    assert store.get(conn, "card:exe:9") is None, "a rolled-back change must send nothing"


def test_a_thread_reply_is_not_claimed_before_its_parent_has_a_ts(conn, clock):
    outbox = Outbox(now=clock)
    touch(conn, outbox, key="progress:exe:1", thread_key="card:exe:1")
    touch(conn, outbox, key="card:exe:1")
    clock.advance(1)
    with conn.transaction():
        claimed = store.claim(conn, me="a", now=clock(), lease=60, limit=10)
    assert [r["key"] for r in claimed] == ["card:exe:1"], \
        "the reply needs its parent's ts and must wait for it"
    with conn.transaction():
        assert store.complete(conn, claimed[0], me="a", now=clock(), ts="1.5", updated=False,
                              min_interval=1.0)
        claimed = store.claim(conn, me="a", now=clock(), lease=60, limit=10)
    assert [(r["key"], r["parent_ts"]) for r in claimed] == [("progress:exe:1", "1.5")]


def test_a_leased_or_locked_row_is_not_claimed_twice(conn, runtime_db, clock):
    outbox = Outbox(now=clock)
    touch(conn, outbox, key="card:exe:1")
    touch(conn, outbox, key="card:exe:2")
    clock.advance(1)
    with psycopg.connect(runtime_db, row_factory=dict_row) as other:
        # Another sender's claim transaction is still open on card:exe:1.
        other.execute("SELECT id FROM outbox WHERE key = 'card:exe:1' FOR UPDATE")
        with conn.transaction():
            first = store.claim(conn, me="a", now=clock(), lease=60, limit=10)
        assert [r["key"] for r in first] == ["card:exe:2"], "SKIP LOCKED must skip the locked row"
        other.rollback()
    with conn.transaction():
        second = store.claim(conn, me="b", now=clock(), lease=60, limit=10)
    assert [r["key"] for r in second] == ["card:exe:1"], "a leased row must not be claimed again"
    assert second[0]["attempts"] == 1


def test_a_delivery_of_an_older_version_leaves_the_newer_one_due(conn, clock):
    outbox = Outbox(now=clock)
    touch(conn, outbox)
    clock.advance(1)
    with conn.transaction():
        (row,) = store.claim(conn, me="a", now=clock(), lease=60, limit=1)
    touch(conn, outbox)  # the state changed while the sender was talking to Slack
    with conn.transaction():
        store.complete(conn, row, me="a", now=clock(), ts="1.5", updated=False, min_interval=1.0)
    after = store.get(conn, "card:exe:1")
    assert after["sent_version"] == 1 and after["version"] == 2
    assert after["due_at"] is not None, "the newer state must still go out"


def test_a_sender_whose_lease_was_taken_over_cannot_record_the_delivery(conn, clock):
    outbox = Outbox(now=clock)
    touch(conn, outbox)
    clock.advance(1)
    with conn.transaction():
        (stale,) = store.claim(conn, me="a", now=clock(), lease=60, limit=1)
        store.drop_leases(conn, holder="a")  # "a" was taken for dead; its row is ready again
        assert [r["key"] for r in store.claim(conn, me="b", now=clock(), lease=60,
                                              limit=1)] == ["card:exe:1"]
    with conn.transaction():
        recorded = store.complete(conn, stale, me="a", now=clock(), ts="1.5", updated=False,
                                  min_interval=1.0)
    assert not recorded, "a sender that lost its lease recorded a delivery"
    after = store.get(conn, "card:exe:1")
    assert after["leased_by"] == "b" and after["ts"] is None, (
        "the row must stay leased to the sender that holds it now, undelivered")
