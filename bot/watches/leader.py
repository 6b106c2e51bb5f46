"""Leader election among replicas: the holder of one PostgreSQL session advisory lock leads.

The lock lives on a dedicated connection. When the leader's process dies, PostgreSQL ends its
session and frees the lock; the others try every ``retry_s`` seconds, so one of them leads
again within ``retry_s`` (plus the time the server needs to notice the dead connection, which
keepalives bound). The leader writes the watches' results through that same connection
(``write``), so a process that lost its session can never write as leader: no fencing token
needed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from bot.store.db import DatabaseUnavailable

log = logging.getLogger(__name__)

LOCK_NS = 0x604  # the watches leader (0x601 steps, 0x602 senders, 0x603 inbox owners)
CALL_S = 1.0  # the lock's and the check's deadline: a silent partition would hold them forever


class NotLeader(Exception):
    """This process does not (or no longer) hold the lock."""


class Leader:
    """See the module docstring. ``on_elected``/``on_lost`` run in the election thread;
    ``while_leading`` runs there every ``tick_s`` while this process leads."""

    def __init__(self, db: Any, *, name: str = "watches", retry_s: float = 3.0,
                 tick_s: float = 1.0, on_elected: Callable[[], None] = lambda: None,
                 on_lost: Callable[[], None] = lambda: None,
                 while_leading: Callable[[], None] = lambda: None):
        self.db, self.name = db, name
        self.retry_s, self.tick_s = retry_s, tick_s
        self.on_elected, self.on_lost, self.while_leading = on_elected, on_lost, while_leading
        self._conn: psycopg.Connection | None = None
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lost = False

    @property
    def leading(self) -> bool:
        return self._conn is not None

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="golive-leader",
                                            daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop campaigning; a leader steps down (its lock is freed with its session)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._step_down()

    @contextmanager
    def write(self) -> Iterator[psycopg.Connection]:
        """A transaction on the lock's own session: it commits only while we lead."""
        with self._write_lock:
            conn = self._conn
            if conn is None or conn.closed:
                raise NotLeader(self.name)
            try:
                with conn.transaction():
                    yield conn
            except psycopg.OperationalError:
                self._drop()
                self._lost = True  # the election thread tells on_lost
                raise

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                if self._lost:
                    self._lost = False
                    log.warning("watches: this process no longer leads")
                    self.on_lost()
                if self._conn is None:
                    self._campaign()
                else:
                    self._check()
                if self._conn is not None:
                    self.while_leading()
            except Exception as e:  # noqa: BLE001 - the election must outlive any outage
                log.warning("watches leader: %s", str(e).splitlines()[0] if str(e)
                            else type(e).__name__)
                self._step_down()
            self._stop.wait(self.tick_s if self._conn is not None else self.retry_s)

    def _campaign(self) -> None:
        conn = self.db.connect()
        conn.autocommit = True
        try:
            with self.db.deadline(conn, CALL_S):
                row = conn.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s)) AS got",
                                   (LOCK_NS, self.name)).fetchone()
        except (psycopg.Error, DatabaseUnavailable):
            conn.close()
            raise
        if not row or not row["got"]:
            conn.close()
            return
        with self._write_lock:
            self._conn = conn
        log.info("watches: this process leads")
        self.on_elected()

    def _check(self) -> None:
        try:
            with self._write_lock:
                if self._conn is not None:
                    with self.db.deadline(self._conn, CALL_S):
                        self._conn.execute("SELECT 1")
        except (psycopg.Error, DatabaseUnavailable):
            self._step_down()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass

    def _step_down(self) -> None:
        was = self._conn is not None
        with self._write_lock:
            self._drop()
        if was:  # on the way out (stop) that is the plan, not news
            (log.info if self._stop.is_set() else log.warning)(
                "watches: this process no longer leads")
            self.on_lost()
