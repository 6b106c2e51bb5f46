"""The outbox's per-channel post bucket (bot/outbox/pacing.py) against the sandbox's limit
(bot/dev/sandbox/limits.py), which counts a post when it arrives."""

from datetime import UTC, datetime, timedelta

from bot.dev.sandbox.limits import PostLimit
from bot.outbox.pacing import BURST, MARGIN_S, ChannelBuckets

T0 = datetime(2026, 12, 2, tzinfo=UTC)


def test_a_quiet_channel_takes_a_burst_at_once_then_one_a_second_plus_the_margin():
    b = ChannelBuckets()
    for _ in range(BURST):
        assert b.free_at("C", T0) is None
        b.take("C", T0)
    assert b.free_at("C", T0) == T0 + timedelta(seconds=1 + MARGIN_S)
    assert b.free_at("C", T0 + timedelta(seconds=1 + MARGIN_S)) is None


def test_posts_sent_when_the_bucket_says_are_admitted_although_some_arrive_late():
    """The failure this margin fixes: a post sent exactly at the refill arrived before the
    sandbox's refill because the post before it had arrived late."""
    bot, slack = ChannelBuckets(), PostLimit()
    now, arrivals = T0, []
    for i in range(12):
        now = bot.free_at("C", now) or now
        bot.take("C", now)
        lag = MARGIN_S * 0.9 if i < BURST else 0.0  # a burst slow to arrive, the rest not
        arrivals.append((now - T0).total_seconds() + lag)
    refused = [t for t in sorted(arrivals) if not slack.admit("C", t)]
    assert not refused, f"posts arriving at {refused} were refused"


def test_without_the_margin_the_same_lags_get_a_post_refused():
    """The test above can fail: sent exactly one interval apart, a late and an early arrival
    break Slack's count."""
    bot, slack = ChannelBuckets(margin=0.0), PostLimit()
    now, arrivals = T0, []
    for i in range(12):
        now = bot.free_at("C", now) or now
        bot.take("C", now)
        arrivals.append((now - T0).total_seconds() + (MARGIN_S * 0.9 if i < BURST else 0.0))
    assert [t for t in sorted(arrivals) if not slack.admit("C", t)]
