"""The outbox sender against the real sandbox over HTTP and a real PostgreSQL, with Slack faults
injected. Time is one ManualClock shared by the sandbox and the senders: no sleeps."""

from __future__ import annotations

import threading
import time

import pytest

from bot.dev.sandbox.faults import Fault
from bot.dev.sandbox.limits import POST_BURST, pacing_problems
from bot.dev.sandbox.workspace import message_text
from bot.outbox import store
from bot.outbox.pacing import MARGIN_S
from tests.support.outbox_rig import CHANNEL, Rig, pump_until


@pytest.fixture
def rig(runtime_db):
    r = Rig(runtime_db)
    yield r
    r.close()


def test_ten_touches_within_a_second_make_one_update_with_the_newest_render(rig):
    s = rig.sender()
    rig.touch("card:exe:1", "Deploy v2: awaiting approval")
    pump_until(rig, s, lambda: rig.showing("Deploy v2"))
    rig.touch("card:exe:1", "Deploy v2: approved")
    pump_until(rig, s, lambda: rig.calls("chat.update"))
    before = len(rig.calls("chat.update"))
    for i in range(10):
        rig.touch("card:exe:1", f"Deploy v2: pulling layer {i}")
        rig.advance(0.09)
        s.pump()
    assert len(rig.calls("chat.update")) == before, \
        "an update went out within a second of the previous one"
    rig.advance(0.1)
    s.pump()
    updates = rig.calls("chat.update")[before:]
    assert len(updates) == 1, f"ten touches in a second cost {len(updates)} chat.update calls"
    (card,) = rig.showing("Deploy v2")
    assert message_text(card).startswith("Deploy v2: pulling layer 9"), \
        "the coalesced update did not show the newest state"


def test_a_500_on_the_post_is_retried_and_the_card_appears_once(rig):
    rig.server.api.fail_next("chat.postMessage", status=500)
    s = rig.sender()
    rig.touch("card:exe:1", "Maintenance on: Approve / Reject")
    rig.advance(0.1)
    s.pump()
    assert not rig.showing("Maintenance on"), "the injected 500 did not happen"
    took = pump_until(rig, s, lambda: rig.showing("Maintenance on"))
    assert len(rig.showing("Maintenance on")) == 1, "the approval card was posted twice"
    # The failed post spent one of the channel's burst: the retry waits only its backoff.
    assert took <= 1.0 + 1e-6, f"the retry came {took:.1f}s after the 500"


def test_a_post_applied_then_answered_500_is_adopted_not_posted_again(rig):
    rig.server.api.inject(Fault("chat.postMessage", applied=True, times=1))
    s = rig.sender()
    rig.touch("card:exe:1", "Deploy v2: awaiting approval")
    rig.advance(0.1)
    s.pump()
    assert len(rig.showing("Deploy v2")) == 1, "the sandbox did not apply the post"
    assert rig.row("card:exe:1")["ts"] is None, "the sender saw the 500, so it knows no ts"
    pump_until(rig, s, lambda: rig.row("card:exe:1")["ts"] is not None)
    (card,) = rig.showing("Deploy v2")  # exactly one card, live buttons nowhere else
    assert rig.row("card:exe:1")["ts"] == card.ts, "the sender did not adopt Slack's message"
    rig.touch("card:exe:1", "Deploy v2: approved by bob")
    pump_until(rig, s, lambda: message_text(card).startswith("Deploy v2: approved"))
    assert len(rig.showing("Deploy v2")) == 1


def test_a_429_holds_that_method_on_that_channel_for_its_retry_after(rig):
    rig.server.api.inject(Fault("chat.postMessage", status=429, error="ratelimited",
                                retry_after=2, times=1))
    s = rig.sender()
    rig.touch("card:exe:1", "Health checks: queued")
    rig.touch("card:exe:2", "Smoke tests: queued")
    rig.advance(0.1)
    s.pump()
    (limited,) = rig.calls("chat.postMessage")
    assert limited.status == 429
    for _ in range(18):  # up to 1.9 s after the 429
        rig.advance(0.1)
        s.pump()
    assert len(rig.calls("chat.postMessage")) == 1, \
        "chat.postMessage was called on the channel before its Retry-After passed"
    pump_until(rig, s, lambda: rig.showing("Health checks") and rig.showing("Smoke tests"))
    first_retry = rig.calls("chat.postMessage")[1]
    assert first_retry.at - limited.at >= 2.0


def test_new_cards_go_out_in_a_burst_then_one_per_second(rig):
    # Slack: about one new message per second per channel, short bursts allowed. A quiet
    # channel gets the first POST_BURST cards at once; the rest follow at 1/s, never faster.
    s = rig.sender()
    for i in range(POST_BURST + 3):
        rig.touch(f"card:exe:{i}", f"Step {i}: queued")
    rig.advance(0.1)
    s.pump()
    assert len(rig.calls("chat.postMessage")) == POST_BURST, \
        "a quiet channel's first cards must go out at once, and no more than the burst"
    took = pump_until(rig, s, lambda: len(rig.messages()) == POST_BURST + 3, step=0.05)
    # One per second plus the sender's margin for arrival jitter (pacing.MARGIN_S) each.
    paced = 3 * (1.0 + MARGIN_S)
    assert paced - 1e-6 <= took <= paced + 0.05 + 1e-6, \
        f"the 3 cards beyond the burst took {took:.2f}s, not one per {1 + MARGIN_S:g} s"
    assert not pacing_problems(rig.ws.calls(), slack=0.0), pacing_problems(rig.ws.calls())
    assert not rig.ws.rate_limited, "the sandbox had to rate-limit the sender"
    rig.advance(10)  # a quiet 10 s fills the bucket again
    for i in range(POST_BURST):
        rig.touch(f"card:exe:{100 + i}", f"Later {i}: queued")
    rig.advance(0.1)
    s.pump()
    assert len(rig.showing("Later")) == POST_BURST, "the bucket did not refill"


def test_two_senders_over_one_table_deliver_each_row_once(rig):
    keys = [f"card:exe:{i}" for i in range(24)]
    for i, k in enumerate(keys):
        rig.touch(k, f"Step {i}: queued")
    rig.advance(1)
    rig.server.api.post_limit = None  # unpaced on purpose: the race is the point here
    senders = [rig.sender(batch=1, post_interval=0), rig.sender(batch=1, post_interval=0)]
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def run(sender) -> None:
        try:
            start.wait()
            for _ in range(100):
                sender.pump()
                with rig.db.transaction() as conn:
                    if not store.pending(conn):
                        return
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(s,)) for s in senders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    posted = [message_text(m).split(":")[0] for m in rig.messages()]
    dupes = sorted({p for p in posted if posted.count(p) > 1})
    assert not dupes, f"posted more than once: {dupes}"
    assert sorted(posted) == sorted(f"Step {i}" for i in range(len(keys))), \
        "some rows were never delivered"
    assert len(rig.calls("chat.postMessage")) == len(keys)
    # A row claimed by both would have its second claim look Slack up before posting (and
    # hide the race): each row must have been claimed once.
    assert not rig.calls("conversations.history"), "a row was claimed by both senders"


def test_after_a_two_minute_outage_every_card_shows_its_state_within_5_s(rig):
    s = rig.sender()
    for i in range(4):
        rig.touch(f"card:exe:{i}", f"Step {i}: queued")
    pump_until(rig, s, lambda: len(rig.messages()) == 4)
    outage = rig.server.api.inject(Fault(status=503, error="service_unavailable"))
    calls_before = len(rig.ws.calls())
    for tick in range(240):  # two minutes in half-second steps, the state moving on
        if tick % 20 == 0:
            for i in range(4):
                rig.touch(f"card:exe:{i}", f"Step {i}: state {tick}")
        if tick == 100:
            rig.touch("card:exe:9", "Rollback requested: Approve / Reject")
        rig.advance(0.5)
        s.pump()
    during = len(rig.ws.calls()) - calls_before
    assert during <= 45, f"the sender called Slack {during} times during a 2-minute outage"
    rig.server.api.faults.remove(outage)

    def true_state() -> bool:
        return all(len(rig.showing(f"Step {i}: state 220")) == 1 for i in range(4)) and \
            len(rig.showing("Rollback requested")) == 1

    took = pump_until(rig, s, true_state, limit=30)
    assert took <= 5.0, f"the cards showed their state {took:.1f}s after Slack came back"
    assert len(rig.messages()) == 5, "a message was lost or duplicated across the outage"


class Crash(BaseException):
    """The process dies: nothing after this point runs."""


class DiesAfterPosting:
    """The bot's client, but the process dies right after Slack answered a post."""

    def __init__(self, client):
        self._client = client

    def __getattr__(self, name):
        return getattr(self._client, name)

    def chat_postMessage(self, **kw):
        self._client.chat_postMessage(**kw)
        raise Crash()


def test_a_sender_killed_between_slacks_answer_and_its_commit_is_not_posted_twice(rig):
    dying = rig.sender(DiesAfterPosting(rig.client()))
    rig.touch("card:exe:1", "Traffic open: awaiting approval")
    rig.advance(0.1)
    with pytest.raises(Crash):
        dying.pump()
    dying.close()  # its process is gone: its connections close
    assert len(rig.showing("Traffic open")) == 1
    restarted = rig.sender()
    restarted.pump()  # no clock change: a dead sender's lease must not hold the row
    (card,) = rig.showing("Traffic open")
    assert rig.row("card:exe:1")["ts"] == card.ts, \
        "the restarted sender did not adopt the message the dead one posted"
    assert len(rig.calls("chat.postMessage")) == 1, "the card was posted again"


def test_a_thread_reply_waits_for_its_parent_card(rig):
    rig.server.api.fail_next("chat.postMessage", status=500)
    s = rig.sender()
    rig.touch("card:exe:1", "Migrate: running")
    rig.touch("progress:exe:1", "Migrate log: upgrading", thread_key="card:exe:1")
    rig.advance(0.1)
    s.pump()
    assert not rig.messages(), "the reply went out before its parent card"
    pump_until(rig, s, lambda: rig.showing("Migrate log"))
    (card,) = rig.showing("Migrate: running")
    (reply,) = rig.showing("Migrate log")
    assert reply.thread_ts == card.ts, "the progress log is not a reply under its card"


def test_a_touch_wakes_a_waiting_sender_when_it_commits(rig):
    s = rig.sender()
    s.wait(0)  # listening from here on
    with rig.db.transaction() as conn:
        rig.outbox.touch(conn, key="card:exe:1", channel=CHANNEL)
    started = time.monotonic()
    s.wait(30.0)  # another replica's commit must wake it, not the end of its poll
    assert time.monotonic() - started < 5, "the sender slept through a committed touch"


def test_a_running_sender_delivers_in_the_background(runtime_db):
    rig = Rig(runtime_db, manual_clock=False)  # a live sender thread: real time
    try:
        s = rig.sender(poll=60.0)
        s.start()
        rig.touch("card:exe:1", "Deploy v2: queued")
        first = rig.ws.wait_for_message(CHANNEL, contains="Deploy v2", timeout=5)
        rig.touch("card:exe:2", "Migrate: queued")
        second = rig.ws.wait_for_message(CHANNEL, contains="Migrate", timeout=5)
        assert first.ts != second.ts, "two touched cards are two messages, delivered unasked"
    finally:
        rig.close()


def test_under_random_500s_and_429s_every_card_ends_once_in_its_true_state(rig):
    # The measurement: 20% of calls answered 500, 10% 429; and a quarter of the posts
    # applied by Slack before it answered 500.
    api = rig.server.api
    rules = [api.inject(Fault("chat.postMessage", status=500, rate=0.25, applied=True, seed=2)),
             api.inject(Fault(status=500, rate=0.2, seed=1)),
             api.inject(Fault(status=429, error="ratelimited", rate=0.1, retry_after=1, seed=3))]
    s = rig.sender()
    for round_ in range(5):
        for i in range(12):
            rig.touch(f"card:exe:{i}", f"Flow {i}: state {round_}")
        for _ in range(10):
            rig.advance(0.1)
            s.pump()

    def settled() -> bool:
        return all(rig.showing(f"Flow {i}: state 4") for i in range(12))

    pump_until(rig, s, settled, limit=60)
    hits = [f.hits for f in rules]
    assert all(hits), f"a kind of fault never happened: {hits}"
    cards = [message_text(m).split(":")[0] for m in rig.messages()]
    assert sorted(cards) == sorted(f"Flow {i}" for i in range(12)), \
        f"duplicate or missing cards: {sorted(cards)}"
    assert not pacing_problems(rig.ws.calls()), pacing_problems(rig.ws.calls())
    assert not rig.ws.rate_limited, "the sandbox had to rate-limit the sender"


def test_a_click_on_a_message_still_being_recorded_is_told_apart_from_a_stale_one(rig):
    # Slack shows a message as soon as it answered the post; the sender commits its ts a
    # moment later. A click in between must wait for it, not be refused as "out of date".
    with rig.db.transaction() as conn:
        conn.execute("INSERT INTO outbox (key, channel, ts) VALUES ('card:exe:1', %s, '1.1')",
                     (CHANNEL,))
        conn.execute("INSERT INTO outbox (key, channel, lease_until, leased_by)"
                     " VALUES ('card:exe:2', %s, now() + interval '30 seconds', 's')",
                     (CHANNEL,))
        assert rig.outbox.landing(conn, CHANNEL, "2.2"), "a post is in flight: wait for it"
        assert not rig.outbox.landing(conn, CHANNEL, "1.1"), "a recorded message is known"
        assert not rig.outbox.landing(conn, "C_OTHER", "2.2"), "nothing in flight there"
        conn.execute("UPDATE outbox SET ts = '2.2', lease_until = NULL WHERE key = 'card:exe:2'")
        assert not rig.outbox.landing(conn, CHANNEL, "3.3"), \
            "no post in flight: an unknown ts is a stale or forged card, no wait"
