"""Per-channel pacing of new messages: a token bucket (one per channel).

Slack documents chat.postMessage as "1 per second" per channel with "short bursts >1
allowed" (https://docs.slack.dev/apis/web-api/rate-limits, "Posting messages"; the
chat.postMessage reference: "generally allows posting one message per second per channel").
Slack publishes no burst size, so the bot allows a small one (``BURST``) and holds the long-run
rate to ``1 / interval``; a 429 it still gets is obeyed through its Retry-After (sender.py).

Implemented as the generic cell rate algorithm: one "theoretical arrival time" per channel,
the same as a bucket of ``burst`` tokens refilled one per ``interval`` that starts full.
Updates of one message are paced separately (at most one per second per message, store.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta

BURST = 4  # new messages a quiet channel may receive at once
MARGIN_S = 0.1
"""The bucket refills one token per ``interval + MARGIN_S``: Slack counts a call when it
arrives, and two calls sent exactly one interval apart can arrive closer than that (the
sandbox, which counts the same way, answered one such post with a 429 on a loaded machine)."""


class ChannelBuckets:
    """``free_at`` says when the next new message may go to a channel; ``take`` spends one."""

    def __init__(self, interval: float = 1.0, burst: int = BURST, margin: float = MARGIN_S):
        # Refilled a little slower than Slack's rate (MARGIN_S); the burst is unchanged.
        self.interval = timedelta(seconds=max(0.0, interval) + (max(0.0, margin)
                                                                 if interval > 0 else 0.0))
        self.burst = max(1, burst)
        self._tat: dict[str, datetime] = {}  # channel -> when its bucket is full again

    def free_at(self, channel: str, now: datetime) -> datetime | None:
        """None when a token is free now, else when the next one is."""
        tat = self._tat.get(channel)
        if tat is None:
            return None
        at = tat - self.interval * (self.burst - 1)
        return at if at > now else None

    def take(self, channel: str, now: datetime) -> None:
        """Spend a token: an attempt counts, whatever Slack answers."""
        self._tat[channel] = max(self._tat.get(channel, now), now) + self.interval
