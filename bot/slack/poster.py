"""Outgoing messages with Slack's pacing built in: at most one update per second per message.

Progress updates are coalesced: the newest content wins and is sent when the message's
one-second window opens. Posting a new message is immediate (it returns the ts callers need).
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

log = logging.getLogger(__name__)
MIN_INTERVAL = 1.0


@dataclass
class _Slot:
    last_sent: float = float("-inf")
    pending: dict[str, Any] | None = None
    due: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class Poster:
    def __init__(self, client: WebClient, *, clock: Callable[[], float] = time.monotonic,
                 min_interval: float = MIN_INTERVAL):
        self.client = client
        self.clock = clock
        self.min_interval = min_interval
        self._slots: dict[tuple[str, str], _Slot] = {}
        self._heap: list[tuple[float, tuple[str, str]]] = []
        self._cv = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="golive-poster", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        self.flush()

    # --- API -----------------------------------------------------------------------------
    def post(self, channel: str, *, text: str, blocks: list[dict] | None = None,
             thread_ts: str | None = None) -> str | None:
        """Post a message now; returns its ts, or None when Slack refused it (logged)."""
        try:
            resp = self.client.chat_postMessage(channel=channel, text=text, blocks=blocks,
                                                thread_ts=thread_ts)
        except SlackApiError as e:
            log.warning("chat.postMessage failed: %s", e.response.get("error"))
            return None
        ts = resp.get("ts")
        if ts:
            self._slot(channel, ts).last_sent = self.clock()
        return ts

    def update(self, channel: str, ts: str, *, text: str, blocks: list[dict] | None = None
               ) -> None:
        """Update a message in place, coalescing updates inside its one-second window."""
        slot = self._slot(channel, ts)
        with slot.lock:
            slot.pending = {"text": text, "blocks": blocks}
            now = self.clock()
            if slot.due is None:
                slot.due = max(now, slot.last_sent + self.min_interval)
                with self._cv:
                    heapq.heappush(self._heap, (slot.due, (channel, ts)))
                    self._cv.notify_all()

    def ephemeral(self, channel: str, user: str, *, text: str, blocks: list[dict] | None = None
                  ) -> None:
        try:
            self.client.chat_postEphemeral(channel=channel, user=user, text=text, blocks=blocks)
        except SlackApiError as e:
            log.warning("chat.postEphemeral failed: %s", e.response.get("error"))

    def upload(self, channel: str, *, filename: str, content: str, title: str,
               thread_ts: str | None = None, comment: str | None = None) -> None:
        """Long text goes out as a file (files.uploadV2: the three-call upload)."""
        try:
            self.client.files_upload_v2(channel=channel, filename=filename, content=content,
                                        title=title, thread_ts=thread_ts,
                                        initial_comment=comment)
        except SlackApiError as e:
            log.warning("file upload failed: %s", e.response.get("error"))

    def flush(self) -> None:
        """Send every pending update now, ignoring the window (shutdown and tests)."""
        for key in list(self._slots):
            self._send(key, force=True)

    # --- internals -----------------------------------------------------------------------
    def _slot(self, channel: str, ts: str) -> _Slot:
        key = (channel, ts)
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots.setdefault(key, _Slot())
        return slot

    def _send(self, key: tuple[str, str], *, force: bool = False) -> None:
        slot = self._slots.get(key)
        if slot is None:
            return
        with slot.lock:
            now = self.clock()
            if slot.pending is None:
                slot.due = None
                return
            if not force and now < slot.last_sent + self.min_interval:
                slot.due = slot.last_sent + self.min_interval
                with self._cv:
                    heapq.heappush(self._heap, (slot.due, key))
                return
            payload, slot.pending, slot.due = slot.pending, None, None
            try:
                self.client.chat_update(channel=key[0], ts=key[1], **payload)
            except SlackApiError as e:
                log.warning("chat.update failed: %s", e.response.get("error"))
            slot.last_sent = self.clock()

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._stop and (not self._heap or self._heap[0][0] > self.clock()):
                    timeout = (self._heap[0][0] - self.clock()) if self._heap else None
                    self._cv.wait(timeout=timeout if timeout is None else max(timeout, 0.005))
                if self._stop:
                    return
                _, key = heapq.heappop(self._heap)
            try:
                self._send(key)
            except Exception:  # never let the poster thread die
                log.exception("poster failed")
