"""PostgreSQL access: a psycopg 3 pool, and the bot's own schema through alembic."""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row

from bot.store.pool import Pool, PoolTimeout

Hook = Callable[["psycopg.Connection"], None]  # see Database.before_commit

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).with_name("migrations")


class DatabaseUnavailable(Exception):
    """The database did not answer; the user sees a short message and nothing is half-done."""


def sqlalchemy_url(url: str) -> str:
    """alembic speaks SQLAlchemy URLs: pin the psycopg 3 driver."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def alembic_config(url: str, *, runtime_role: str | None = None,
                   door_role: str | None = None):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolation treats % specially (percent-encoded passwords).
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    if runtime_role:
        cfg.set_main_option("golive.runtime_role", runtime_role)
    if door_role:
        cfg.set_main_option("golive.door_role", door_role)
    return cfg


def upgrade(url: str, revision: str = "head", *, runtime_role: str | None = None,
            door_role: str | None = None) -> None:
    """Apply the bot's migrations up to ``revision`` as the owner role at ``url``, granting
    ``runtime_role`` (default golive_runtime) what the bot needs and ``door_role`` (default
    golive_door) the inbox's INSERT, which only the door has."""
    from alembic import command

    command.upgrade(alembic_config(url, runtime_role=runtime_role, door_role=door_role),
                    revision)


def downgrade(url: str, revision: str, *, runtime_role: str | None = None,
              door_role: str | None = None) -> None:
    from alembic import command

    command.downgrade(alembic_config(url, runtime_role=runtime_role, door_role=door_role),
                      revision)


def current_revision(url: str) -> str | None:
    """The revision the database is at, or None before the first migration."""
    with psycopg.connect(url, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT to_regclass('alembic_version') IS NOT NULL").fetchone()
        if not row or not row[0]:
            return None
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        return row[0] if row else None


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config("postgresql://x/y")).get_current_head()
    assert head is not None
    return head


# Every call gets a deadline, enforced twice: the server cancels a slow statement
# (statement_timeout) and TCP keepalives / tcp_user_timeout drop a dead peer; and because a
# silent partition (a middlebox that accepts and ACKs but forwards nothing) defeats both, a
# client-side watchdog shuts the socket down when a checkout overruns its deadline, so
# psycopg raises OperationalError at once and the pool discards the connection.
CALL_TIMEOUT_S = 3.0
"""Default deadline of one ``Database.connection()`` checkout, from asking to giving back."""
CHECK_TIMEOUT_S = 0.8
"""Deadline of the pool's liveness check of an idle connection before handing it out."""
FRESH_S = 1.0
"""A pooled connection that finished a call this recently is handed out without a check (a
round trip on every checkout otherwise; a database restart takes longer than this)."""
CONNECT_TIMEOUT_S = 2  # libpq's minimum useful value


def connection_kwargs(url: str, *, statement_timeout_s: float | None) -> dict[str, Any]:
    """Connection options every bot connection gets: keepalives, tcp_user_timeout, and a
    server-side statement timeout (added to any ``options`` the URL already carries)."""
    opts = conninfo_to_dict(url).get("options") or ""
    if statement_timeout_s is not None:
        opts = f"{opts} -c statement_timeout={int(statement_timeout_s * 1000)}".strip()
    kw: dict[str, Any] = {"row_factory": dict_row, "connect_timeout": CONNECT_TIMEOUT_S,
                          "keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2,
                          "keepalives_count": 3, "tcp_user_timeout": 10_000}
    if opts:
        kw["options"] = opts
    if not conninfo_to_dict(url).get("application_name"):
        # Which process holds a connection, for whoever reads pg_stat_activity.
        kw["application_name"] = f"golive[{os.getpid()}]"
    return kw


def sever(conn: psycopg.Connection) -> None:
    """Shut the connection's socket down under a blocked call: it fails at once."""
    try:
        fd = conn.pgconn.socket
    except Exception:  # noqa: BLE001 - already closed or broken: nothing to cut
        return
    try:
        with socket.socket(fileno=os.dup(fd)) as s:
            s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class Watchdog:
    """One thread that severs connections whose deadline passed (no thread per call)."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._heap: list[tuple[float, int]] = []
        self._armed: dict[int, psycopg.Connection] = {}
        self._ids = itertools.count()
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None
        self.severed = 0

    def arm(self, conn: psycopg.Connection, seconds: float) -> int:
        """Watch ``conn`` for ``seconds``; returns a token for ``disarm``."""
        token = next(self._ids)
        with self._cv:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="golive-db-watchdog",
                                                daemon=True)
                self._thread.start()
            self._armed[token] = conn
            due = self.clock() + seconds
            # The thread sleeps until the earliest deadline: wake it only for an earlier one
            # (not on every checkout: a thread switch per database call).
            if not self._heap or due < self._heap[0][0]:
                self._cv.notify()
            heapq.heappush(self._heap, (due, token))
        return token

    def disarm(self, token: int) -> bool:
        """Stop watching; False when the deadline passed first (the connection is severed:
        it must be discarded, never handed out again)."""
        with self._cv:
            return self._armed.pop(token, None) is not None

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._heap and self._heap[0][1] not in self._armed:
                    heapq.heappop(self._heap)
                wait = self._heap[0][0] - self.clock() if self._heap else None
                if wait is None or wait > 0:
                    self._cv.wait(wait)
                    continue
                _, token = heapq.heappop(self._heap)
                conn = self._armed.pop(token)
                self.severed += 1
                # Under the lock (a shutdown() does not block): once ``disarm`` returned,
                # the connection is severed or never will be, so no connection is severed
                # after its caller handed it back to the pool.
                sever(conn)
            log.warning("database call overran its deadline; dropping the connection")


class Database:
    """A connection pool whose every checkout has a deadline: a call that misses it raises
    DatabaseUnavailable instead of hanging (see CALL_TIMEOUT_S)."""

    def __init__(self, url: str, *, min_size: int = 2, max_size: int = 16,
                 timeout: float = CALL_TIMEOUT_S, statement_timeout: float | None = None):
        self.url = url
        self.timeout = timeout
        self.statement_timeout = statement_timeout if statement_timeout is not None \
            else max(0.5, timeout - 0.5)
        self.watchdog = Watchdog()
        self._caller = threading.local()  # the checking-out caller's deadline, for _check
        self._ambient = threading.local()  # a transaction this thread's calls join (ambient)
        # What runs just before each open transaction commits (``before_commit``), by connection.
        self._pending: weakref.WeakKeyDictionary[psycopg.Connection, list[Hook]] = \
            weakref.WeakKeyDictionary()
        # When each pooled connection last finished a call without an error (see _check).
        self._used: weakref.WeakKeyDictionary[psycopg.Connection, float] = \
            weakref.WeakKeyDictionary()
        self.kwargs = connection_kwargs(url, statement_timeout_s=self.statement_timeout)
        self.pool = Pool(lambda: psycopg.connect(url, **self.kwargs), min_size=min_size,
                         max_size=max_size, check=self._check)

    def _check(self, conn: psycopg.Connection) -> None:
        used = self._used.get(conn)
        if used is not None and time.monotonic() - used < FRESH_S and not conn.broken:
            return  # it answered a moment ago: a round trip to ask again buys nothing
        left = getattr(self._caller, "deadline", float("inf")) - time.monotonic()
        token = self.watchdog.arm(conn, max(0.05, min(CHECK_TIMEOUT_S, left)))
        try:
            conn.autocommit = True
            try:
                conn.execute("")  # an empty query: one round trip, nothing run
            finally:
                conn.autocommit = False
        finally:
            if not self.watchdog.disarm(token):
                raise psycopg.OperationalError("the liveness check overran its deadline")

    def open(self, wait: bool = False) -> None:
        self.pool.open(wait=wait, timeout=max(self.timeout, 5.0))

    def close(self) -> None:
        self.pool.close()

    @contextmanager
    def connection(self, *, timeout: float | None = None, autocommit: bool = False
                   ) -> Iterator[psycopg.Connection]:
        """A pooled connection; commit on success, roll back on error. The whole checkout,
        waiting included, must end within ``timeout`` (default ``self.timeout``) seconds or it
        raises DatabaseUnavailable; a longer job passes its own (and sets its own
        statement_timeout). ``autocommit``: each statement is its own transaction (one round
        trip for a one-statement call, no BEGIN or COMMIT of its own); outside an ambient
        transaction only."""
        ambient = getattr(self._ambient, "conn", None)
        if ambient is not None:
            # Inside a request's inbox transaction: join it (a savepoint), so the request's
            # effect and its "done" mark commit together (bot/inbox.py).
            pending = self._pending.get(ambient)
            mark = len(pending) if pending is not None else 0
            try:
                with ambient.transaction():
                    yield ambient
            except BaseException as e:
                if pending is not None:
                    del pending[mark:]  # the savepoint rolled back: so did what waited in it
                if isinstance(e, psycopg.OperationalError):
                    raise DatabaseUnavailable(str(e).splitlines()[0] if str(e)
                                              else type(e).__name__) from e
                raise
            return
        budget = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + budget
        self._caller.deadline = deadline
        try:
            conn = self.pool.getconn(budget)
        except PoolTimeout as e:
            raise DatabaseUnavailable(str(e)) from e
        token = self.watchdog.arm(conn, max(0.05, deadline - time.monotonic()))
        ok = False
        try:
            if autocommit:
                conn.autocommit = True
                yield conn
            else:
                self._pending[conn] = []
                try:
                    yield conn
                    self.run_before_commit(conn)
                finally:
                    self._pending.pop(conn, None)
                conn.commit()
            ok = True
        except psycopg.OperationalError as e:
            raise DatabaseUnavailable(str(e).splitlines()[0] if str(e) else type(e).__name__) from e
        finally:
            if not ok and not autocommit and not conn.closed:
                try:  # still under the watchdog: a silent database cannot hold it up
                    conn.rollback()
                except psycopg.Error:
                    pass
            discard = False
            if autocommit and not conn.closed:
                try:
                    conn.autocommit = False
                except psycopg.Error:
                    discard = True
            # Severed by the watchdog (whatever the call made of it): closed, so no later
            # checkout is handed it (the pool closes a broken one too).
            severed = not self.watchdog.disarm(token)
            if ok and not severed:
                self._used[conn] = time.monotonic()
            self.pool.putconn(conn, discard=discard or severed)

    transaction = connection

    def before_commit(self, conn: psycopg.Connection, hook: Hook) -> bool:
        """Run ``hook(conn)`` just before the pool transaction ``conn`` is in commits (after
        every other statement of it; dropped if it, or the savepoint it was added in, rolls
        back). False when ``conn`` is in no such transaction: the caller acts now."""
        pending = self._pending.get(conn)
        if pending is None or conn.autocommit:
            return False
        pending.append(hook)
        return True

    def run_before_commit(self, conn: psycopg.Connection) -> None:
        """Run the hooks waiting on ``conn`` now, in the order they were added."""
        pending = self._pending.get(conn)
        while pending:
            pending.pop(0)(conn)

    @contextmanager
    def ambient(self, conn: psycopg.Connection) -> Iterator[None]:
        """Every ``connection()`` this thread opens inside joins ``conn``'s transaction (and
        the one it joined before, if any, again after: a request handled inside a batch's
        transaction, bot/inbox.py ``handle_batch``)."""
        outer = getattr(self._ambient, "conn", None)
        self._ambient.conn = conn
        try:
            yield
        finally:
            self._ambient.conn = outer

    @contextmanager
    def deadline(self, conn: psycopg.Connection, seconds: float) -> Iterator[None]:
        """What runs inside on ``conn`` (a dedicated one, ``connect``) ends within
        ``seconds`` or the watchdog severs it: DatabaseUnavailable, and the caller closes
        ``conn`` (a silent partition would otherwise hold the call forever)."""
        token = self.watchdog.arm(conn, seconds)
        try:
            yield
        except psycopg.OperationalError as e:
            raise DatabaseUnavailable(str(e).splitlines()[0] if str(e) else type(e).__name__) from e
        finally:
            severed = not self.watchdog.disarm(token)
        if severed:  # it ended just as the watchdog cut it: the connection is gone anyway
            raise DatabaseUnavailable("the call overran its deadline")

    def connect(self) -> psycopg.Connection:
        """A dedicated connection (not pooled) with the same options; the caller closes it."""
        try:
            return psycopg.connect(self.url, **self.kwargs)
        except psycopg.OperationalError as e:
            raise DatabaseUnavailable(str(e).splitlines()[0] if str(e) else type(e).__name__) from e

    def ping(self, timeout: float = 1.5) -> bool:
        """True when the database answers within ``timeout`` seconds."""
        try:
            with self.connection(timeout=timeout) as conn:
                conn.execute("SELECT 1")
            return True
        except (DatabaseUnavailable, psycopg.Error):
            return False
