"""Durable Slack delivery: the outbox table, the write side the engine calls inside its
transactions (``Outbox.touch``), and the sender that delivers it (``Sender``).

Keys name logical messages: ``card:exe:17`` (a step's card, also its approval card),
``card:approval:4`` (a rollback request's card), ``interrupted:exe:17``, ``summary:run:3``,
``progress:exe:17`` (a thread reply under ``card:exe:17``), ``upload:exe:17`` (long output as a
file). The composition root registers one renderer per prefix on the sender.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg

from bot.outbox import store
from bot.outbox.sender import EVENT_TYPE, Sender

__all__ = ["EVENT_TYPE", "RUN_CARD", "Outbox", "Sender", "store"]

RUN_CARD = "summary:run"
"""The living run card's key prefix (``summary:run:N``, issue 21 item 4): posted at ``start``,
updated in place, the run summary once the run ended. Progress goes into its thread."""


class Outbox:
    """The write side: ``touch`` in the transaction of the state change a message shows."""

    def __init__(self, *, now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 debounce: float = 0.1, min_interval: float = 1.0):
        self.now = now
        self.debounce = debounce
        self.min_interval = min_interval

    def touch(self, conn: psycopg.Connection, *, key: str, channel: str,
              thread_key: str | None = None, delay: float = 0.0, data: Any = None,
              final: bool = False) -> None:
        """Message ``key`` must show the current state (posted if new, else updated in place).

        ``delay`` holds it back (e.g. "running", shown only if still true a second later);
        ``thread_key`` makes it a reply in that message's thread; ``data`` is handed to the
        renderer (newest wins). ``final``: the state will not change again soon (a step's
        result), so it skips the debounce; it still waits out the message's one-second update
        window. Delivered after the caller commits; rolled back with it.
        """
        store.touch(conn, key=key, channel=channel, now=self.now(), thread_key=thread_key,
                    delay=delay, debounce=0.0 if final else self.debounce,
                    min_interval=self.min_interval, data=data)

    @staticmethod
    def exists(conn: psycopg.Connection, key: str) -> bool:
        """Whether message ``key`` was ever touched."""
        return store.get(conn, key) is not None

    @staticmethod
    def landing(conn: psycopg.Connection, channel: str, ts: str) -> bool:
        """A message Slack may show already, its ts not yet recorded (a post in flight)."""
        return store.landing(conn, channel, ts)

    @staticmethod
    def ts(conn: psycopg.Connection, key: str) -> str | None:
        """The ts of message ``key`` once posted (None before)."""
        return store.ts_of(conn, key)

    @staticmethod
    def run_thread(conn: psycopg.Connection, run_id: int | None) -> str | None:
        """The run card's key when it was touched, so a message can be a reply in its thread;
        None for a run opened before the run card existed (its messages stay top-level)."""
        if run_id is None:
            return None
        key = f"{RUN_CARD}:{run_id}"
        return key if store.get(conn, key) is not None else None
