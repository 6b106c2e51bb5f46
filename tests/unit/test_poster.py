"""The poster's pacing as Slack sees it: the sandbox enforces one update per second per
message on the same injected clock, so a violation would show up as a recorded 429."""

from __future__ import annotations

import pytest
from slack_sdk import WebClient

from bot.sandbox import SandboxServer, Workspace
from bot.sandbox.workspace import ManualClock
from bot.slack.poster import Poster


@pytest.fixture
def setup():
    clock = ManualClock()
    ws = Workspace.default_demo(clock=clock)
    server = SandboxServer(ws, signing_secret="s", bot_token="xoxb-t", clock=clock).start()
    client = WebClient(token="xoxb-t", base_url=server.api_url)
    yield ws, Poster(client, clock=clock), clock  # the thread is not started: we pump
    server.stop()


def texts(ws, ts):
    msg = ws.message("C_CUTOVER", ts)
    return [v.text for v in msg.history] + [msg.text]


def test_updates_right_after_a_post_coalesce_into_one_after_the_debounce(setup):
    ws, poster, clock = setup
    ts = poster.post("C_CUTOVER", text="queued")
    poster.update("C_CUTOVER", ts, text="running")
    poster.update("C_CUTOVER", ts, text="succeeded")
    assert poster.pump() == 0, "nothing goes out before the debounce"
    clock.advance(0.1)
    assert poster.pump() == 1
    assert texts(ws, ts) == ["queued", "succeeded"], "the newest content wins"
    assert not ws.rate_limited


def test_never_more_than_one_update_per_second_per_message(setup):
    ws, poster, clock = setup
    ts = poster.post("C_CUTOVER", text="v0")
    other = poster.post("C_CUTOVER", text="w0")
    poster.update("C_CUTOVER", ts, text="v1")
    clock.advance(0.1)
    assert poster.pump() == 1
    for i in range(2, 6):  # a burst of progress inside the next second
        clock.advance(0.1)
        poster.update("C_CUTOVER", ts, text=f"v{i}")
        poster.pump()
    poster.update("C_CUTOVER", other, text="w1")  # another message has its own window
    clock.advance(0.1)
    poster.pump()
    assert texts(ws, other) == ["w0", "w1"]
    assert texts(ws, ts) == ["v0", "v1"], "held back until the second is over"
    clock.advance(0.5)  # one second after v1 went out
    assert poster.pump() == 1
    assert texts(ws, ts) == ["v0", "v1", "v5"]
    assert not ws.rate_limited, "the sandbox saw more than one update a second"


def test_flush_sends_what_is_pending(setup):
    ws, poster, _clock = setup
    ts = poster.post("C_CUTOVER", text="a")
    poster.update("C_CUTOVER", ts, text="b")
    poster.flush()
    assert texts(ws, ts) == ["a", "b"]


def test_delayed_running_state_is_skipped_when_the_result_comes_first(setup):
    ws, poster, clock = setup
    ts = poster.post("C_CUTOVER", text="queued")
    poster.update("C_CUTOVER", ts, text="running", delay=1.0)
    clock.advance(0.3)
    assert poster.pump() == 0, "'running' is held back for a second"
    poster.update("C_CUTOVER", ts, text="succeeded")  # the step finished quickly
    clock.advance(0.1)
    assert poster.pump() == 1
    clock.advance(1.0)
    poster.pump()
    assert texts(ws, ts) == ["queued", "succeeded"], "one update, straight to the result"
    assert not ws.rate_limited


def test_delayed_running_state_shows_when_the_step_is_long(setup):
    ws, poster, clock = setup
    ts = poster.post("C_CUTOVER", text="queued")
    poster.update("C_CUTOVER", ts, text="running", delay=1.0)
    clock.advance(1.0)
    assert poster.pump() == 1
    clock.advance(2.0)
    poster.update("C_CUTOVER", ts, text="succeeded")
    clock.advance(0.1)
    assert poster.pump() == 1, "the result is not held back after a long run"
    assert texts(ws, ts) == ["queued", "running", "succeeded"]


def test_a_delayed_update_pushes_back_what_was_pending(setup):
    """An approval click is pending when the step starts: the delayed 'running' replaces it,
    and a quick result goes out alone, right away."""
    ws, poster, clock = setup
    ts = poster.post("C_CUTOVER", text="awaiting approval")
    poster.update("C_CUTOVER", ts, text="approved")  # due after the debounce
    clock.advance(0.01)
    poster.update("C_CUTOVER", ts, text="running", delay=1.0)
    clock.advance(0.1)
    assert poster.pump() == 0, "the click's update must not drag 'running' out early"
    clock.advance(0.05)
    poster.update("C_CUTOVER", ts, text="succeeded")
    clock.advance(0.1)
    assert poster.pump() == 1
    assert texts(ws, ts) == ["awaiting approval", "succeeded"]


def test_rendered_updates_send_the_state_at_send_time_and_survive_a_429(setup):
    """Two replicas update one card: the one that loses the second to a 429 re-renders
    later, so a stale snapshot can never be the last word."""
    ws, poster, clock = setup
    state = {"now": "approved"}
    ts = poster.post("C_CUTOVER", text="awaiting approval")
    other = Poster(poster.client, clock=clock)  # the other replica
    other.update("C_CUTOVER", ts, text="running")
    clock.advance(0.1)
    assert other.pump() == 1
    poster.update("C_CUTOVER", ts, render=lambda: {"text": state["now"], "blocks": None})
    clock.advance(0.1)
    assert poster.pump() == 0, "rate-limited: the sandbox saw a second update within 1 s"
    state["now"] = "succeeded"  # the step finished meanwhile
    clock.advance(1.0)
    assert poster.pump() == 1
    assert texts(ws, ts)[-1] == "succeeded", texts(ws, ts)
