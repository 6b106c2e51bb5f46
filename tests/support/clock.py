"""A wall clock a test can move forward: injected into the bot at construction (the engine and
the canary read it), so a test of an expiry or an age never sleeps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class ShiftClock:
    """Real time plus an offset the test sets."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, **delta: float) -> None:
        """Move the clock forward (``minutes=16``)."""
        self.offset += timedelta(**delta)
