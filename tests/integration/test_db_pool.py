"""The pool after a silent partition (bot/store/pool.py, bot/store/db.py): the first checkout
after the database's return works, a connection the watchdog severed is never handed out
again, and a dedicated connection's call has a deadline too.

The partition is a TCP proxy that accepts and ACKs but forwards nothing (tests/support)."""

from __future__ import annotations

import threading
import time
from urllib.parse import urlsplit, urlunsplit

import pytest

from bot.inbox import Inbox
from bot.store.db import Database, DatabaseUnavailable
from tests.support.tcpproxy import TcpProxy


@pytest.fixture
def proxied(runtime_db):
    """(Database reaching the runtime role through a proxy, the proxy)."""
    parts = urlsplit(runtime_db)
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    netloc = parts.netloc.rsplit("@", 1)[0] + f"@127.0.0.1:{proxy.port}"
    db = Database(urlunsplit(parts._replace(netloc=netloc)), min_size=2, timeout=1.0)
    db.open(wait=True)
    yield db, proxy
    proxy.restore()
    db.close()
    proxy.close()


def select_1(db: Database) -> int:
    with db.connection() as conn:
        return conn.execute("SELECT 1 AS one").fetchone()["one"]


def until(cond, timeout: float = 10.0) -> bool:
    """Wait for ``cond()`` (a condition the code under test makes true), at most ``timeout``."""
    give_up = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > give_up:
            return False
        threading.Event().wait(0.02)
    return True


def test_the_first_checkout_after_a_silent_partition_works(proxied):
    db, proxy = proxied
    assert select_1(db) == 1
    proxy.silence()
    # Long enough that a pool with a reconnection backoff (1 s, 2 s, 4 s...) would still be
    # waiting out a delay when the database comes back.
    for _ in range(5):
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable):
            select_1(db)
        assert time.monotonic() - started < 2.0, "each call keeps its 1 s deadline"
    proxy.restore()
    started = time.monotonic()
    assert select_1(db) == 1, "the first call after the return"
    assert time.monotonic() - started < 1.0


def test_a_connection_the_watchdog_severed_is_never_handed_out_again(proxied):
    db, _ = proxied
    assert select_1(db) == 1
    with db.connection(timeout=0.3) as conn:
        # The call's deadline passes (a partition would look the same from here): the
        # watchdog severs the connection, and the call then ends without an error of its
        # own, having nothing left to send.
        assert until(lambda: db.watchdog.severed == 1)
        severed = conn
    assert severed.closed, "a severed connection goes back to the pool closed"
    for _ in range(db.pool.max_size):  # every connection the pool holds now works
        assert select_1(db) == 1


def test_a_presence_check_in_a_silent_partition_fails_instead_of_hanging(proxied):
    db, proxy = proxied
    inbox = Inbox(db)
    inbox.ensure_presence()
    proxy.silence()
    outcome: list[object] = []

    def check() -> None:
        try:
            inbox.ensure_presence()
            outcome.append("answered")
        except Exception as e:  # noqa: BLE001 - what it raised is the outcome
            outcome.append(e)

    started = time.monotonic()
    worker = threading.Thread(target=check, daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "the presence check hung in the partition"
    assert isinstance(outcome[0], DatabaseUnavailable), outcome
    assert time.monotonic() - started < 5.0
    proxy.restore()
    inbox.ensure_presence()  # back: the owner lock is held again
    inbox.close()
