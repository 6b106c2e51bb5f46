"""The handler: the work side of the inbox (bot/inbox.py).

The door (bot/server.py) only verifies, records and acks; it never runs a lazy half, so an
ack never waits for the interpreter behind a status view, an audit row or a step's log. The
lazy halves run here, in the work process (``golive work``, which ``golive serve`` starts
and supervises, bot/supervise.py), or in a thread of the same process (``golive demo``,
``golive serve --work inline``): the same code either way.

One loop per process: it listens on ``golive_inbox`` (the door's ``NOTIFY`` in its insert
transaction), claims the requests that arrived, oldest first and at most ``capacity`` at a
time, and hands each to the Bolt app (``dispatch``), whose lazy half handles it once, in its
channel's order (``Inbox.handle``). Without a notification it looks again every ``poll_s``
seconds, so a lost notification (a dropped connection) delays a request, never loses it.

Requests that change nothing (``status``, ``help``) are claimed apart, up to ``Inbox``'s
``BATCH`` at a time (on top of ``capacity``) whenever one of ``BATCHES`` batch threads is
free, and handled there in one transaction (``Inbox.handle_batch``): their lazy halves run in
that thread (Bolt's ``lazy_only`` dispatch, the way it re-invokes a lazy listener on FaaS),
one commit serves them all, and their replies go out after it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
from slack_bolt import App
from slack_bolt.request import BoltRequest

from bot.app import REQUEST, TABLE
from bot.inbox import BATCH, Inbox
from bot.ingress import CommandRequest
from bot.loops import Loop
from bot.store.db import DatabaseUnavailable

log = logging.getLogger(__name__)

CHANNEL = "golive_inbox"
CAPACITY = 8  # claimed and unfinished requests per process (Bolt runs lazy halves on 10 threads)
POLL_S = 1.0
RETRY_S = 1.0  # after a database failure
LISTEN_S = 1.0  # the LISTEN of a new listening connection
BATCHES = 3  # batches handled at once (each its own transaction and thread)
# The command listener's lazy half, by the name Bolt finds it under (``lazy_only`` dispatch).
COMMAND_HALF = next(half for kind, _, _, half in TABLE if kind == "command")


FORM: dict[str, str | Sequence[str]] = {"content-type": "application/x-www-form-urlencoded"}


def dispatch(app: App, inbox_id: int, body: bytes, request: object = None, *,
             inline: bool = False) -> bool:
    """Hand a request the door recorded (or one acked by a process that died) to the work
    side's app, as it is: the door verified it once, so it is not signed again (who may write
    inbox rows, and what that trusts: docs/THREAT_MODEL.md). False when nothing will handle it.
    ``inline``: a slash command's lazy half runs in this thread, before this returns (in a
    batch, ``Inbox.handle_batch``); else on Bolt's threads."""
    bolt_req = BoltRequest(body=body.decode("utf-8"), headers=FORM)
    bolt_req.context["inbox_id"] = inbox_id
    # The command as the door parsed it (``inbox.request``): the work side never parses it.
    bolt_req.context[REQUEST] = CommandRequest.from_json(request)
    if inline:
        bolt_req.lazy_only = True
        bolt_req.lazy_function_name = COMMAND_HALF
    # 404: no listener; 5xx: its ack failed, so Bolt started no lazy half either.
    return app.dispatch(bolt_req).status == 200


class Handoff:
    """See the module docstring. ``dispatch(inbox_id, body)`` returns whether anything will
    handle the request (False: nothing listens for it, so it is done as it is)."""

    def __init__(self, inbox: Inbox, dispatch: Callable[..., bool], *,
                 capacity: int = CAPACITY, poll_s: float = POLL_S, batch: int = BATCH,
                 batches: int = BATCHES):
        self.inbox = inbox
        self.dispatch = dispatch  # (inbox_id, body, request, inline=False) -> handled
        self.capacity = capacity
        self.poll_s = poll_s
        self.batch = batch
        self.batches = batches
        self._pool = ThreadPoolExecutor(batches, thread_name_prefix="golive-batch")
        self._room = threading.Condition()
        self._busy = 0  # batches being handled (and their replies posted)
        self._loop = Loop("golive-handoff")
        self._stop = self._loop.stopping
        self._listen: psycopg.Connection | None = None

    def start(self) -> None:
        self._loop.start(self._run)

    def stop(self) -> None:
        self._loop.stop()
        self._close()
        self._pool.shutdown(wait=True)

    # ------------------------------------------------------------------ the loop
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._listening()
                if self.pump():
                    continue
                if self.inbox.in_flight(read_only=False) >= self.capacity:
                    self.inbox.wait_for_room(self.capacity, self.poll_s, read_only=False)
                elif not self._free():
                    with self._room:  # until a batch ends
                        self._room.wait_for(self._free, self.poll_s)
                else:
                    self._wait()
            except (DatabaseUnavailable, psycopg.Error) as e:
                log.warning("inbox handoff: %s", type(e).__name__)
                self._close()
                self._stop.wait(RETRY_S)

    def pump(self) -> int:
        """Claim and hand over what fits: requests that change something to Bolt's threads,
        those that do not (up to ``batch``, when a batch thread is free) as one batch;
        returns how many were claimed."""
        rows = self.inbox.claim(self.capacity - self.inbox.in_flight(read_only=False),
                                self.batch if self._free() else 0)
        batch = [r for r in rows if r["read_only"]]
        for row in rows:
            if not row["read_only"]:
                self._hand_over(row)
        if batch:
            with self._room:
                self._busy += 1
            self._pool.submit(self._handle_batch, batch)
        return len(rows)

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every batch started so far is handled and its replies are posted."""
        with self._room:
            return self._room.wait_for(lambda: self._busy == 0, timeout)

    def _free(self) -> bool:
        with self._room:
            return self._busy < self.batches

    def _handle_batch(self, rows: list[dict]) -> None:
        try:
            replies, again = self.inbox.handle_batch(rows, self._run_inline)
            _run_all(replies)  # after the commit
            for row in again:  # rolled back: each on its own (and its own failure reply)
                self._hand_over(row)
        finally:
            with self._room:
                self._busy -= 1
                self._room.notify_all()  # the loop may start another batch

    def _hand_over(self, row: dict, *, inline: bool = False) -> None:
        try:
            handled = self.dispatch(row["id"], bytes(row["body"]), row.get("request"),
                                    inline=inline)
        except Exception:  # one bad request must not stop the loop
            log.exception("request %s could not be handed over", row["id"])
            handled = False
        if not handled:
            self.inbox.release(row["id"])
            self.inbox.nothing_to_do(row["id"])

    def _run_inline(self, row: dict) -> None:
        self._hand_over(row, inline=True)

    def _listening(self) -> None:
        if self._listen is None or self._listen.closed:
            db = self.inbox.db
            conn = db.connect()
            try:
                conn.autocommit = True
                with db.deadline(conn, LISTEN_S):  # a silent partition: not forever
                    conn.execute(f"LISTEN {CHANNEL}")
            except BaseException:
                conn.close()
                raise
            self._listen = conn

    def _wait(self) -> None:
        """Until a notification arrives (drained: one claim serves them all) or ``poll_s``."""
        assert self._listen is not None
        got = False
        for _ in self._listen.notifies(timeout=self.poll_s, stop_after=1):
            got = True
        if got:  # take the burst's other notifications without waiting
            for _ in self._listen.notifies(timeout=0):
                pass

    def _close(self) -> None:
        if self._listen is not None:
            try:
                self._listen.close()
            except psycopg.Error:
                pass
            self._listen = None


def _run_all(fns: Sequence[Callable[[], Any]]) -> None:
    for fn in fns:
        try:
            fn()
        except Exception:  # one failed reply must not keep the others from going out
            log.exception("a reply could not be sent")
