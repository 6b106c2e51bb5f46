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
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import psycopg
from slack_bolt import App
from slack_bolt.request import BoltRequest

from bot.app import REQUEST
from bot.inbox import Inbox
from bot.ingress import CommandRequest
from bot.loops import Loop
from bot.store.db import DatabaseUnavailable

log = logging.getLogger(__name__)

CHANNEL = "golive_inbox"
CAPACITY = 8  # claimed and unfinished requests per process (Bolt runs lazy halves on 10 threads)
POLL_S = 1.0
RETRY_S = 1.0  # after a database failure


FORM: dict[str, str | Sequence[str]] = {"content-type": "application/x-www-form-urlencoded"}


def dispatch(app: App, inbox_id: int, body: bytes, request: object = None) -> bool:
    """Hand a request the door recorded (or one acked by a process that died) to the work
    side's app, as it is: the door verified it once, so it is not signed again (who may write
    inbox rows, and what that trusts: docs/THREAT_MODEL.md). False when nothing will handle it."""
    bolt_req = BoltRequest(body=body.decode("utf-8"), headers=FORM)
    bolt_req.context["inbox_id"] = inbox_id
    # The command as the door parsed it (``inbox.request``): the work side never parses it.
    bolt_req.context[REQUEST] = CommandRequest.from_json(request)
    # 404: no listener; 5xx: its ack failed, so Bolt started no lazy half either.
    return app.dispatch(bolt_req).status == 200


class Handoff:
    """See the module docstring. ``dispatch(inbox_id, body)`` returns whether anything will
    handle the request (False: nothing listens for it, so it is done as it is)."""

    def __init__(self, inbox: Inbox, dispatch: Callable[[int, bytes, object], bool], *,
                 capacity: int = CAPACITY, poll_s: float = POLL_S):
        self.inbox = inbox
        self.dispatch = dispatch
        self.capacity = capacity
        self.poll_s = poll_s
        self._loop = Loop("golive-handoff")
        self._stop = self._loop.stopping
        self._listen: psycopg.Connection | None = None

    def start(self) -> None:
        self._loop.start(self._run)

    def stop(self) -> None:
        self._loop.stop()
        self._close()

    # ------------------------------------------------------------------ the loop
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._listening()
                if self.inbox.in_flight() >= self.capacity:
                    self.inbox.wait_for_room(self.capacity, self.poll_s)
                elif self.pump() == 0:
                    self._wait()
            except (DatabaseUnavailable, psycopg.Error) as e:
                log.warning("inbox handoff: %s", type(e).__name__)
                self._close()
                self._stop.wait(RETRY_S)

    def pump(self) -> int:
        """Claim and hand over what fits; returns how many were claimed."""
        rows = self.inbox.claim(self.capacity - self.inbox.in_flight())
        for row in rows:
            try:
                handled = self.dispatch(row["id"], bytes(row["body"]), row.get("request"))
            except Exception:  # one bad request must not stop the loop
                log.exception("request %s could not be handed over", row["id"])
                handled = False
            if not handled:
                self.inbox.release(row["id"])
                self.inbox.nothing_to_do(row["id"])
        return len(rows)

    def _listening(self) -> None:
        if self._listen is None or self._listen.closed:
            conn = self.inbox.db.connect()
            conn.autocommit = True
            conn.execute(f"LISTEN {CHANNEL}")
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
