"""The outbox sender: one per process, delivers the newest render of every due outbox row.

Rows are claimed under a lease (``FOR UPDATE SKIP LOCKED``, committed before Slack is called),
rendered from the database at send time, then posted or updated; the ts Slack gives back is
recorded. A post that may already have reached Slack (an earlier attempt without a recorded
ts) is first looked up by its metadata and adopted. Errors reschedule the row: a 429 holds
that method on that channel for its Retry-After; 5xx and network errors back off, and a run of
them holds every call but one probe (each time the row tried least recently, so a row Slack
keeps failing does not hold up the others), so a Slack outage costs one call every few seconds
and ends within seconds of Slack's return. A sender holds a session advisory lock while it lives:
a dead sender's leases are taken over at once instead of waiting for them to expire.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from slack_sdk.errors import SlackApiError

from bot.outbox import pacing, store

log = logging.getLogger(__name__)

EVENT_TYPE = "golive_message"  # the metadata every posted message carries: {"key": row key}
LOCK_NS = 0x602  # advisory lock namespace: one lock per live sender
POST, UPDATE, UPLOAD = "chat.postMessage", "chat.update", "files.upload"
OUTAGE_STREAK = 3  # consecutive 5xx/network failures that mean "Slack is down"
# seconds: the longest wait after a 5xx. A recovery shows within 5 s: the probe that finds
# Slack back comes within this, and a second new card in the channel a second later.
TRANSIENT_CAP = 3.5
PERMANENT_CAP = 30.0  # seconds: the longest wait after a refusal (invalid_blocks, ...)
MAX_ATTEMPTS = 8  # refusals before a row is parked (a new touch revives it)

Content = dict[str, Any]
Render = Callable[[psycopg.Connection, str, Any], Content | None]
"""``render(conn, ref, data) -> content | None``: ``ref`` is the key after its prefix, ``data``
the row's last touch data. Content is ``{"text", "blocks"}`` for a message or ``{"filename",
"content", "title", "comment"}`` for an upload; None means there is nothing to send."""
OnPosted = Callable[[psycopg.Connection, str, str, str], None]
"""``on_posted(conn, ref, channel, ts)``, in the transaction that records a new message's ts."""


@dataclass(frozen=True)
class Kind:
    """How rows under one key prefix are rendered and delivered."""

    render: Render
    upload: bool = False
    on_posted: OnPosted | None = None


class Sender:
    """See the module docstring."""

    def __init__(self, db: Any, client: Any, *,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 min_interval: float = 1.0, post_interval: float = 1.0,
                 post_burst: int = pacing.BURST, lease: float = 60.0,
                 batch: int = 20, poll: float = 1.0, sender_id: str | None = None):
        self.db = db
        self.client = client
        self.now = now
        self.min_interval = min_interval  # between two updates of one message
        # New messages (posts, thread replies, uploads) per channel: a token bucket of
        # ``post_burst``, refilled one per ``post_interval`` (Slack: 1/s, short bursts allowed).
        self._posts = pacing.ChannelBuckets(post_interval, post_burst)
        self.lease = lease
        self.batch = batch
        self.poll = poll
        self.id = sender_id or f"{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._kinds: dict[str, Kind] = {}
        self._holds: dict[tuple[str, str], datetime] = {}  # (method, channel) -> Retry-After end
        self._streak = 0
        self._outage_until: datetime | None = None
        self._method = POST  # the Slack method being called, for error handling
        self._session: psycopg.Connection | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- configuration and lifecycle ----------------------------------------------------
    def register(self, prefix: str, render: Render, *, upload: bool = False,
                 on_posted: OnPosted | None = None) -> None:
        """Render keys ``prefix:ref`` with ``render`` (the longest matching prefix wins)."""
        self._kinds[prefix] = Kind(render=render, upload=upload, on_posted=on_posted)

    def start(self) -> None:
        """Deliver in a background thread until ``stop``."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="golive-outbox", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop delivering for good; undelivered rows stay in the table for the next sender."""
        self._stop.set()
        self.wake()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.close()
        fds, self._wake_r, self._wake_w = (self._wake_r, self._wake_w), -1, -1
        for fd in fds:
            if fd >= 0:  # a closed number may be reused: never touch it again
                os.close(fd)

    def close(self) -> None:
        """Drop the session connection (and with it this sender's liveness lock)."""
        if self._session is not None:
            try:
                self._session.close()
            finally:
                self._session = None

    def wake(self) -> None:
        """Look at the table now (touches also wake every sender through NOTIFY at commit)."""
        if self._wake_w < 0:
            return  # stopped
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass  # the pipe is full: a wake-up is already pending

    # --- delivery -------------------------------------------------------------------------
    def pump(self) -> int:
        """Deliver every row that is ready now; returns how many deliveries were made."""
        self._ensure_session()
        self._take_over_dead()
        delivered = 0
        while not self._stop.is_set():
            now = self.now()
            if self._outage_until is not None and now < self._outage_until:
                break
            # During an outage one row probes Slack, in turn; the rest wait for its answer.
            probe = self._streak >= OUTAGE_STREAK
            with self.db.connection() as conn:
                rows = store.claim(conn, me=self.id, now=now, lease=self.lease,
                                   limit=1 if probe else self.batch, probe=probe)
            if not rows:
                break
            for row in rows:
                delivered += self._deliver(row)
        return delivered

    def _kind(self, key: str) -> tuple[Kind, str] | None:
        best = max((p for p in self._kinds if key.startswith(p + ":")), key=len, default=None)
        return (self._kinds[best], key[len(best) + 1:]) if best is not None else None

    def _deliver(self, row: dict) -> bool:
        found = self._kind(row["key"])
        if found is None:
            log.warning("outbox: no renderer for %s; parked", row["key"])
            self._release(row, not_before=None, error="no renderer", park=True)
            return False
        kind, ref = found
        if kind.upload and row["ts"]:
            return self._complete(row, kind, ref, ts=row["ts"], updated=False)  # files are final
        method = UPLOAD if kind.upload else UPDATE if row["ts"] else POST
        now = self.now()
        held = self._held_until(method, row["channel"], now)
        if held is not None:
            self._release(row, not_before=held, error=None, uncount=True)
            return False
        try:
            with self.db.connection() as conn:
                content = kind.render(conn, ref, row["data"])
        except Exception as e:  # noqa: BLE001 - e.g. the database is down: try again soon
            log.warning("outbox: could not render %s: %s", row["key"], type(e).__name__)
            self._release(row, not_before=now + timedelta(seconds=1), error="render failed",
                          uncount=True)
            return False
        if content is None:
            return self._complete(row, kind, ref, ts=row["ts"], updated=False)
        self._method = method
        try:
            ts, updated = self._send(row, kind, ref, method, content)
        except SlackApiError as e:
            self._failed(row, e.response.status_code, e.response.get("error"),
                         e.response.headers or {})
            return False
        except Exception as e:  # noqa: BLE001 - network errors: Slack may have applied it
            self._failed(row, 0, type(e).__name__, {})
            return False
        self._streak, self._outage_until = 0, None
        return self._complete(row, kind, ref, ts=ts, updated=updated)

    def _send(self, row: dict, kind: Kind, ref: str, method: str, content: Content
              ) -> tuple[str, bool]:
        channel, thread_ts = row["channel"], row["parent_ts"]
        if method == UPDATE:
            self.client.chat_update(channel=channel, ts=row["ts"], text=content.get("text", ""),
                                    blocks=content.get("blocks"))
            return row["ts"], True
        # An earlier attempt may have reached Slack without its answer being recorded.
        earlier = self._find_earlier(row, content) if row["attempts"] > 1 else None
        if method == UPLOAD:
            if earlier:
                return earlier, False
            self._method = UPLOAD
            self._posts.take(channel, self.now())  # an attempt counts, whatever its answer
            resp = self.client.files_upload_v2(
                channel=channel, filename=content["filename"], content=content["content"],
                title=content.get("title"), initial_comment=content.get("comment"),
                thread_ts=thread_ts)
            files = resp.get("files") or [resp.get("file") or {}]
            return str(files[0].get("id") or "file"), False
        if earlier:
            # Adopt it, record that at once, then show the current render on it.
            self._adopt(row, kind, ref, earlier)
            self._method = UPDATE
            self.client.chat_update(channel=channel, ts=earlier, text=content.get("text", ""),
                                    blocks=content.get("blocks"))
            return earlier, True
        self._method = POST
        self._posts.take(channel, self.now())  # an attempt counts, whatever its answer
        resp = self.client.chat_postMessage(
            channel=channel, text=content.get("text", ""), blocks=content.get("blocks"),
            thread_ts=thread_ts,
            metadata={"event_type": EVENT_TYPE, "event_payload": {"key": row["key"]}})
        return resp["ts"], False

    def _find_earlier(self, row: dict, content: Content) -> str | None:
        """The message (or file) an earlier attempt of this row posted, if Slack has it."""
        self._method = "conversations.history"
        if row["parent_ts"]:
            resp = self.client.conversations_replies(channel=row["channel"], ts=row["parent_ts"],
                                                     include_all_metadata=True, limit=200)
        else:
            resp = self.client.conversations_history(channel=row["channel"],
                                                     include_all_metadata=True, limit=200)
        for m in resp.get("messages") or []:
            if "filename" in content:
                for f in m.get("files") or []:
                    if f.get("name") == content["filename"] and \
                            f.get("title") == content.get("title"):
                        return str(f["id"])
                continue
            meta = m.get("metadata") or {}
            if meta.get("event_type") == EVENT_TYPE and \
                    (meta.get("event_payload") or {}).get("key") == row["key"]:
                return str(m["ts"])
        return None

    def _held_until(self, method: str, channel: str, now: datetime) -> datetime | None:
        until = self._holds.get((method, channel))
        if until is not None and until > now:
            return until
        return None if method == UPDATE else self._posts.free_at(channel, now)

    def _failed(self, row: dict, status: int, error: str | None, headers: Any) -> None:
        now, method, channel = self.now(), self._method, row["channel"]
        if status == 429 or error == "ratelimited":
            wait = _retry_after(headers)
            until = now + timedelta(seconds=wait)
            self._holds[(method, channel)] = until
            log.info("outbox: %s on %s rate limited for %.1fs", method, channel, wait)
            # A 429 means Slack applied nothing: the attempt does not count.
            self._release(row, not_before=until, error="ratelimited", uncount=True)
        elif status >= 500 or status == 0:
            self._streak += 1
            wait = min(TRANSIENT_CAP, 0.5 * 2 ** (self._streak - 1))
            if method == UPDATE:  # a failed update still counts against its message's second
                wait = max(wait, self.min_interval)
            until = now + timedelta(seconds=wait)
            if self._streak >= OUTAGE_STREAK:
                self._outage_until = until
            log.warning("outbox: %s for %s failed (%s); retry in %.1fs", method, row["key"],
                        error or status, wait)
            self._release(row, not_before=until, error=f"{method}: {error or status}")
        elif error == "message_not_found" and method == UPDATE:
            # Someone deleted the message: post the card anew.
            self._release(row, not_before=now, error=error, uncount=True, forget_ts=True)
        else:
            attempts = row["attempts"]
            wait = min(PERMANENT_CAP, 2.0 ** (attempts - 1))
            park = attempts >= MAX_ATTEMPTS
            log.warning("outbox: %s for %s refused: %s%s", method, row["key"], error,
                        "; parked" if park else "")
            self._release(row, not_before=now + timedelta(seconds=wait),
                          error=f"{method}: {error}", park=park)

    # --- bookkeeping in the database --------------------------------------------------------
    def _complete(self, row: dict, kind: Kind, ref: str, *, ts: str | None, updated: bool
                  ) -> bool:
        with self.db.connection() as conn:
            ok = store.complete(conn, row, me=self.id, now=self.now(), ts=ts, updated=updated,
                                min_interval=self.min_interval)
            if ok and ts and ts != row["ts"] and kind.on_posted is not None:
                kind.on_posted(conn, ref, row["channel"], ts)
        if not ok:
            log.warning("outbox: lost the lease on %s before recording its delivery", row["key"])
        return ok

    def _adopt(self, row: dict, kind: Kind, ref: str, ts: str) -> None:
        with self.db.connection() as conn:
            conn.execute("UPDATE outbox SET ts = %s WHERE id = %s AND leased_by = %s",
                         (ts, row["id"], self.id))
            if kind.on_posted is not None:
                kind.on_posted(conn, ref, row["channel"], ts)
        row["ts"] = ts
        log.info("outbox: adopted the message an earlier attempt posted for %s", row["key"])

    def _release(self, row: dict, **kw: Any) -> None:
        with self.db.connection() as conn:
            store.release(conn, row, me=self.id, **kw)

    # --- liveness, takeover and waiting ----------------------------------------------------
    def _ensure_session(self) -> None:
        if self._session is not None and not self._session.closed:
            return
        conn = self.db.connect()
        conn.autocommit = True
        conn.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (LOCK_NS, self.id))
        conn.execute(f"LISTEN {store.CHANNEL}")
        self._session = conn

    def _take_over_dead(self) -> None:
        """Leases of senders whose liveness lock is free end now (their process is gone)."""
        assert self._session is not None
        with self.db.connection() as conn:
            holders = store.live_holders(conn, me=self.id, now=self.now())
        for holder in holders:
            got = self._session.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s)) AS got",
                                        (LOCK_NS, holder)).fetchone()
            if not got["got"]:
                continue  # alive
            try:
                with self.db.connection() as conn:
                    n = store.drop_leases(conn, holder=holder)
                log.warning("outbox: took over %d row(s) from dead sender %s", n, holder)
            finally:
                self._session.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))",
                                      (LOCK_NS, holder))

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.pump()
                wait = self._until_next()
            except Exception as e:  # noqa: BLE001 - error boundary: outlive database outages
                log.warning("outbox sender: %s", str(e).splitlines()[0] if str(e) else
                            type(e).__name__)
                self.close()
                wait = self.poll
            self.wait(wait)

    def _until_next(self) -> float:
        now = self.now()
        with self.db.connection() as conn:
            at = store.next_due(conn, now=now)
        if self._outage_until is not None:
            at = max(at, self._outage_until) if at else None
        if at is None:
            return self.poll
        return max(0.005, min(self.poll, (at - now).total_seconds()))

    def wait(self, timeout: float) -> None:
        """Block until a touch commits (any replica), ``wake`` is called, or ``timeout``."""
        fds = [self._wake_r]
        try:
            self._ensure_session()
            session = self._session
            if session is not None:
                if list(session.notifies(timeout=0)):
                    return  # a notification arrived while we were busy
                fds.append(session.fileno())
        except Exception as e:  # noqa: BLE001 - database down: plain polling until it is back
            log.warning("outbox: cannot listen for touches: %s", type(e).__name__)
            self.close()
        ready, _, _ = select.select(fds, [], [], timeout)
        if self._wake_r in ready:
            os.read(self._wake_r, 4096)
        if len(fds) > 1 and fds[1] in ready and self._session is not None:
            try:
                list(self._session.notifies(timeout=0))
            except psycopg.Error:
                self.close()


def _retry_after(headers: Any) -> float:
    for k, v in dict(headers).items():
        if str(k).lower() == "retry-after":
            try:
                return max(0.0, float(v[0] if isinstance(v, list) else v))
            except (TypeError, ValueError):
                break
    return 1.0
