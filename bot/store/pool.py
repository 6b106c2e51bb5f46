"""The connection pool under ``bot.store.db.Database``: connections are made on demand, by
whoever is waiting for one, and there is no reconnection schedule.

psycopg_pool replaces a lost connection in the background and backs off exponentially
(1 s, 2 s, 4 s, ...) while the database does not answer, and only one attempt to grow the
pool runs at a time. After a silent partition (every attempt hangs until its connect
timeout) its next attempt could be seconds away when the database came back, so the first
commands after the return timed out waiting for a pool with no connection. Here a caller
that finds no idle connection starts an attempt of its own (up to ``max_size`` at once):
one stuck in a handshake the partition swallowed holds up nobody after the return.

A connection handed back broken, closed, mid-transaction or marked ``discard`` (severed by
the watchdog) is closed, never handed out again; so is one older than ``max_lifetime`` or idle
longer than ``max_idle`` (a failover, a proxy's idle cut or a server's settings change is
picked up within that time, as psycopg_pool did)."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import weakref
from collections.abc import Callable

import psycopg
from psycopg.pq import TransactionStatus

log = logging.getLogger(__name__)


class PoolTimeout(Exception):
    """No connection within the caller's deadline (or the pool is closed)."""


class Pool:
    """``getconn(timeout)`` hands out an idle connection that passed ``check`` (the newest
    first), or waits for one while a connection attempt runs; ``putconn(conn)`` takes it
    back. ``min_size`` connections are opened at ``open`` and replaced when lost (once; a
    failed replacement is not retried: the next caller connects)."""

    def __init__(self, connect: Callable[[], psycopg.Connection], *, min_size: int,
                 max_size: int, check: Callable[[psycopg.Connection], None],
                 name: str = "golive", max_lifetime: float = 3600.0, max_idle: float = 600.0,
                 clock: Callable[[], float] = time.monotonic):
        self._connect = connect
        self.max_lifetime, self.max_idle, self._clock = max_lifetime, max_idle, clock
        # when each connection was opened, and when it last went idle
        self._born: weakref.WeakKeyDictionary[psycopg.Connection, float] = \
            weakref.WeakKeyDictionary()
        self._idle_since: weakref.WeakKeyDictionary[psycopg.Connection, float] = \
            weakref.WeakKeyDictionary()
        self.min_size, self.max_size = min_size, max(max_size, min_size, 1)
        self._check = check
        self.name = name
        self._cv = threading.Condition()
        self._idle: list[psycopg.Connection] = []
        self._size = 0  # connections open, idle or handed out
        self._connecting = 0  # attempts under way
        self._closed = True
        self.failed_connects = 0  # attempts that failed, for whoever diagnoses an outage

    # ------------------------------------------------------------------ lifecycle
    def open(self, wait: bool = False, timeout: float = 5.0) -> None:
        with self._cv:
            self._closed = False
            for _ in range(self.min_size - self._size - self._connecting):
                self._start_attempt()
            if wait and not self._cv.wait_for(
                    lambda: self._size >= self.min_size or not self._connecting, timeout):
                raise PoolTimeout(f"pool {self.name!r}: no connection after {timeout:.1f} s")
            if wait and self._size < self.min_size:
                raise PoolTimeout(f"pool {self.name!r}: the database did not answer")

    def close(self, timeout: float = 5.0) -> None:
        """Close the idle connections, and those handed out as they come back; wait (up to
        ``timeout``) for the attempts under way, so none opens a connection after this."""
        with self._cv:
            self._closed = True
            idle, self._idle = self._idle, []
            self._size -= len(idle)
            self._cv.notify_all()
        for conn in idle:
            _close(conn)
        with self._cv:
            self._cv.wait_for(lambda: not self._connecting, timeout)

    def stats(self) -> dict[str, int]:
        with self._cv:
            return {"size": self._size, "idle": len(self._idle),
                    "connecting": self._connecting, "failed_connects": self.failed_connects}

    # ------------------------------------------------------------------ checkout
    def getconn(self, timeout: float) -> psycopg.Connection:
        deadline = time.monotonic() + timeout
        while True:
            conn = self._take(deadline)
            try:
                self._check(conn)
            except Exception as e:  # noqa: BLE001 - any failed check: the next one
                log.info("pool %r: a connection failed its check (%s)", self.name,
                         type(e).__name__)
                self.putconn(conn, discard=True)
                continue
            except BaseException:
                self.putconn(conn, discard=True)
                raise
            return conn

    def _take(self, deadline: float) -> psycopg.Connection:
        asked = False
        expired: list[psycopg.Connection] = []
        try:
            with self._cv:
                while True:
                    if self._closed:
                        raise PoolTimeout(f"pool {self.name!r} is closed")
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise PoolTimeout(
                            f"pool {self.name!r}: no connection within the deadline")
                    if self._idle:
                        conn = self._idle.pop()
                        if not self._expired(conn):
                            return conn
                        expired.append(conn)  # closed below, outside the lock
                        self._size -= 1
                        continue
                    if not asked and self._size < self.max_size \
                            and self._connecting < self.max_size:
                        self._start_attempt()  # this caller's own: none may be coming
                        asked = True
                    self._cv.wait(left)
        finally:
            for conn in expired:
                _close(conn)

    def _expired(self, conn: psycopg.Connection) -> bool:
        """(Holding ``_cv``.) Too old, or idle too long, to be handed out."""
        now = self._clock()
        return (now - self._born.get(conn, now) > self.max_lifetime
                or now - self._idle_since.get(conn, now) > self.max_idle)

    def putconn(self, conn: psycopg.Connection, *, discard: bool = False) -> None:
        """Take ``conn`` back: idle again if it is usable and ``discard`` is not set, else
        closed (and replaced in the background while the pool is below ``min_size``)."""
        usable = not (discard or conn.closed or conn.broken
                      or conn.info.transaction_status != TransactionStatus.IDLE)
        with self._cv:
            if usable and not self._closed:
                self._idle_since[conn] = self._clock()
                self._idle.append(conn)
                self._cv.notify()
                return
            self._size -= 1
            if not self._closed and self._size + self._connecting < self.min_size:
                self._start_attempt()
            self._cv.notify_all()
        _close(conn)

    # ------------------------------------------------------------------ connecting
    def _start_attempt(self) -> None:
        """(Holding ``_cv``.) One connection attempt, on a thread of its own."""
        self._connecting += 1
        threading.Thread(target=self._attempt, name=f"{self.name}-db-connect",
                         daemon=True).start()

    def _attempt(self) -> None:
        conn: psycopg.Connection | None = None
        try:
            conn = self._connect()
        except Exception as e:  # noqa: BLE001 - a failed attempt: the next caller tries again
            first = str(e).splitlines()[0] if str(e) else ""
            log.warning("pool %r: cannot connect: %s %s", self.name, type(e).__name__, first)
        with self._cv:
            self._connecting -= 1
            if conn is None:
                self.failed_connects += 1
            elif self._closed or self._size >= self.max_size:
                pass  # not needed (any more): closed below
            else:
                self._size += 1
                self._born[conn] = self._idle_since[conn] = self._clock()
                self._idle.append(conn)
                conn = None
            self._cv.notify_all()
        if conn is not None:
            _close(conn)


def _close(conn: psycopg.Connection) -> None:
    with contextlib.suppress(Exception):  # closing a broken connection: nothing to save
        conn.close()
