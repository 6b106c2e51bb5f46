"""Slack's message rate limits as the sandbox enforces them, and a check of a call log.

Source: https://docs.slack.dev/apis/web-api/rate-limits ("Posting messages: 1 per second.
Short bursts >1 allowed. If you attempt bursts, there is no guarantee that messages will be
posted"), and the chat.postMessage reference ("generally allows posting one message per
second per channel"). Slack publishes no burst size: the sandbox allows ``POST_BURST`` new
messages at once in a quiet channel and 1/s after that (a token bucket that starts full),
and answers a post beyond that with 429 and Retry-After, as Slack does. chat.update is
limited to one per message per second (``UPDATE_INTERVAL``).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

POST_INTERVAL = 1.0  # seconds per new message in one channel, sustained
POST_BURST = 4  # new messages a quiet channel accepts at once
UPDATE_INTERVAL = 1.0  # Slack allows about one chat.update per message per second


class PostLimit:
    """Per-channel token bucket for chat.postMessage (a virtual-scheduling form of it)."""

    def __init__(self, interval: float = POST_INTERVAL, burst: int = POST_BURST):
        self.interval, self.burst = interval, burst
        self._full_at: dict[str, float] = {}  # channel -> when its bucket is full again

    def admit(self, channel: str, now: float) -> bool:
        """Whether a post at ``now`` is within the limit; an admitted post spends a token."""
        full_at = max(self._full_at.get(channel, now), now)
        if full_at - now > self.interval * (self.burst - 1) + 1e-9:
            return False
        self._full_at[channel] = full_at + self.interval
        return True


def over_limit(times: Iterable[float], *, interval: float, burst: int,
               slack: float = 0.0) -> str | None:
    """Where a sorted list of call times breaks "at most ``burst`` + t / ``interval`` calls in
    any window of t seconds" (the token bucket's arrival curve), or None. ``slack`` forgives
    that much of each window (the sandbox stamps a call when it answers, not when it is sent)."""
    ts = sorted(times)
    for i, j in itertools.combinations(range(len(ts)), 2):
        window = ts[j] - ts[i]
        if j - i + 1 > burst + (window + slack) / interval + 1e-9:
            return f"{j - i + 1} calls within {window:.3f}s"
    return None


def pacing_problems(calls: Iterable[Any], *, slack: float = 0.05) -> list[str]:
    """Every way a call log (``Workspace.calls()``: failed calls too) breaks the documented
    limits: chat.update per message, chat.postMessage per channel."""
    updates: dict[tuple, list[float]] = defaultdict(list)
    posts: dict[str, list[float]] = defaultdict(list)
    for c in calls:
        if c.method == "chat.update":
            updates[(c.params.get("channel"), c.params.get("ts"))].append(c.at)
        elif c.method == "chat.postMessage":
            posts[str(c.params.get("channel"))].append(c.at)
    out = []
    for (_, ts), times in updates.items():
        bad = over_limit(times, interval=UPDATE_INTERVAL, burst=1, slack=slack)
        if bad:
            out.append(f"message {ts} updated: {bad}")
    for channel, times in posts.items():
        bad = over_limit(times, interval=POST_INTERVAL, burst=POST_BURST, slack=slack)
        if bad:
            out.append(f"new messages in {channel}: {bad}")
    return out
