"""Outgoing messages with Slack's pacing built in: at most one update per second per message.

Updates are coalesced: the newest content wins. An update waits a short debounce (so a step
that goes queued -> running -> done in a blink costs one update, not three) and never goes out
within a second of the message's previous update. Posting is immediate (callers need the ts)
and does not count as an update.
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
DEBOUNCE = 0.1


Render = Callable[[], dict[str, Any] | None]


@dataclass
class _Slot:
    last_sent: float = float("-inf")
    pending: dict[str, Any] | Render | None = None
    due: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class Poster:
    def __init__(self, client: WebClient, *, clock: Callable[[], float] = time.monotonic,
                 min_interval: float = MIN_INTERVAL, debounce: float = DEBOUNCE):
        self.client = client
        self.clock = clock
        self.min_interval = min_interval
        self.debounce = debounce
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
        return resp.get("ts")

    def update(self, channel: str, ts: str, *, text: str = "", blocks: list[dict] | None = None,
               render: Render | None = None, delay: float | None = None) -> None:
        """Update a message in place, coalescing updates inside its one-second window.

        ``render`` (instead of ``text``/``blocks``) builds the content when it is sent: several
        replicas may update one card, and only a render of the current state can be trusted
        to be the last word (a snapshot taken earlier could overwrite a newer one).

        ``delay`` holds this content back longer than the debounce (e.g. "running" for a step
        that may well finish first), pushing back whatever was pending; a later update without
        a delay brings it forward again. Only delayed updates push back, so a stream of
        ordinary updates can never starve a message.
        """
        slot = self._slot(channel, ts)
        with slot.lock:
            slot.pending = render if render is not None else {"text": text, "blocks": blocks}
            now = self.clock()
            wait = self.debounce if delay is None else max(delay, self.debounce)
            due = max(now + wait, slot.last_sent + self.min_interval)
            if delay is not None and slot.due is not None:
                due = max(due, slot.due)
            if slot.due is None or due != slot.due and (delay is not None or due < slot.due):
                slot.due = due
                with self._cv:
                    heapq.heappush(self._heap, (due, (channel, ts)))
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

    def pump(self) -> int:
        """Send every update that is due now; returns how many went out."""
        sent = 0
        while True:
            with self._cv:
                if not self._heap or self._heap[0][0] > self.clock():
                    return sent
                _, key = heapq.heappop(self._heap)
            sent += self._send(key)

    def _send(self, key: tuple[str, str], *, force: bool = False) -> bool:
        slot = self._slots.get(key)
        if slot is None:
            return False
        with slot.lock:
            now = self.clock()
            if slot.pending is None:
                slot.due = None
                return False
            if not force and slot.due is not None and now < slot.due:
                return False  # a stale heap entry: the slot's own due time is later
            if not force and now < slot.last_sent + self.min_interval:
                slot.due = slot.last_sent + self.min_interval
                with self._cv:
                    heapq.heappush(self._heap, (slot.due, key))
                return False
            pending, slot.pending, slot.due = slot.pending, None, None
            try:
                payload = pending() if callable(pending) else pending
            except Exception as e:  # noqa: BLE001 - e.g. the database is down: skip this one
                log.warning("could not render an update: %s", type(e).__name__)
                return False
            if payload is None:
                return False
            try:
                self.client.chat_update(channel=key[0], ts=key[1], **payload)
            except SlackApiError as e:
                if e.response.status_code == 429:
                    # Another replica updated this message within the second: try again,
                    # re-rendered then, unless something newer is already pending.
                    retry = float(e.response.headers.get("Retry-After", 1) or 1)
                    if slot.pending is None:
                        slot.pending = pending
                    slot.due = now + max(retry, self.min_interval)
                    with self._cv:
                        heapq.heappush(self._heap, (slot.due, key))
                        self._cv.notify_all()
                    slot.last_sent = now
                    return False
                log.warning("chat.update failed: %s", e.response.get("error"))
            slot.last_sent = self.clock()
            return True

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._stop and (not self._heap or self._heap[0][0] > self.clock()):
                    timeout = (self._heap[0][0] - self.clock()) if self._heap else None
                    self._cv.wait(timeout=timeout if timeout is None else max(timeout, 0.005))
                if self._stop:
                    return
            try:
                self.pump()
            except Exception:
                log.exception("poster failed")
