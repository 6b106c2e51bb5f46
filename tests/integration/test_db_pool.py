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


def test_a_connection_idle_or_old_too_long_is_replaced_not_handed_out(runtime_db):
    # A failover or a proxy's idle cut is picked up: a connection idle past max_idle, or
    # older than max_lifetime, is closed at checkout and a fresh one is made.
    import psycopg

    from bot.store.pool import Pool

    now = [0.0]
    pool = Pool(lambda: psycopg.connect(runtime_db, autocommit=True), min_size=1, max_size=2,
                check=lambda conn: None, max_lifetime=3600, max_idle=600, clock=lambda: now[0])
    pool.open(wait=True)
    try:
        def backend(conn) -> int:
            return conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        first = pool.getconn(5)
        pid = backend(first)
        pool.putconn(first)
        now[0] = 500.0
        again = pool.getconn(5)
        assert again is first, "idle 500 s of 600: kept"
        pool.putconn(again)
        now[0] = 1101.0  # idle 601 s
        fresh = pool.getconn(5)
        assert fresh is not first and first.closed and backend(fresh) != pid
        for t in range(1, 10):  # in use all the time, until past its lifetime
            pool.putconn(fresh)
            now[0] = 1101.0 + t * 500
            got = pool.getconn(5)
            if got is not fresh:
                break
        assert now[0] - 1101.0 == 4000 and fresh.closed, "replaced first past max_lifetime"
        pool.putconn(got)
    finally:
        pool.close()
