"""The inbox: every acked request is handled once, in the order Slack sent it, even after a crash.

The door (bot/server.py) writes each verified request to the ``inbox`` table before the ack,
unclaimed (``owner = ''``), and wakes the handlers (``NOTIFY golive_inbox``). A handler
(bot/handoff.py, in the work process) ``claim``s requests in the order they arrived, naming
itself their owner, and hands each to the Bolt app, whose lazy half then runs inside ``handle``:

- it waits (briefly) until every earlier request of the same channel is handled, so two
  commands sent 5 ms apart take effect in the order they were sent;
- it locks its row, and runs the listener with every database call joining one transaction
  (``Database.ambient``) that also marks the row ``done``: the effect and the mark commit
  together, or neither does;
- replies go out after the commit (a reply never announces an effect that was rolled back).

Requests that change nothing (``status``, ``help``: ``READ_ONLY``) are handled in batches
(``handle_batch``, from bot/handoff.py): up to ``BATCH`` of them in one transaction, each in
its own savepoint, so one commit (one WAL flush, one hold of the audit chain's head) serves
all of them. Each still gets its own audit row and its own reply, after the commit; an error
in one rolls back only its savepoint; a database failure anywhere rolls the whole batch back
before anyone was told anything, and each is then handled again on its own.

A process holds a session advisory lock on its owner key while it lives. ``recover`` finds
requests whose owner died between the ack and the effect and hands them back to the Bolt app
(any replica may do it; the row lock makes it once). A request whose handling failed because
the database stopped answering was told so; it is marked ``dropped`` when the database is
back, never replayed behind the person's back.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from bot.ingress import READ_ONLY  # the commands that change nothing: handled in batches
from bot.loops import Loop
from bot.store.db import Database, DatabaseUnavailable

log = logging.getLogger(__name__)

LOCK_NS = 0x603  # advisory lock namespace: one lock per live process (its inbox owner key)
ORDER_WAIT_S = 2.0  # how long a request waits for earlier ones of its channel
HANDLE_TIMEOUT_S = 10.0  # the whole handling transaction, Slack lookups included
ORPHAN_AFTER_S = 3.0  # a request this old whose owner is gone is recovered
OWN_START_S = 1.0  # one of ours not being handled this long after arriving has no handler
SETTLE_AFTER_S = 60.0  # ours still "new" this long after arriving: nothing handled it
PRESENCE_FRESH_S = 1.0  # a claim trusts a presence connection that answered this recently
PRESENCE_CHECK_S = 1.0  # a presence check (or lock) that takes longer: the database is away
DROP_FOR_S = 600.0  # how long a failed request's drop mark is retried
BATCH = 32  # read-only requests claimed, handled and committed together at most
BATCH_TIMEOUT_S = HANDLE_TIMEOUT_S  # one batch's transaction (no Slack lookups in it)


class Outcome(enum.Enum):
    DONE = "done"  # handled here, committed
    SKIPPED = "skipped"  # handled before (by a recovery or another replica)
    FAILED = "failed"  # the database failed: nothing committed
    REDO = "redo"  # in a batch that the database failed: handled again on its own


@dataclass
class _Batch:
    """What one ``handle_batch`` transaction holds: the replies waiting for its commit."""

    after: list[Callable[[], Any]] = field(default_factory=list)
    broken: bool = False  # the database failed inside it: nothing of it may commit


def owner_key(owner: str) -> int:
    """The advisory-lock key of an owner id: a signed 32-bit integer, as the two-key form
    ``pg_advisory_lock(int, int)`` takes (a 64-bit one names no function)."""
    return int.from_bytes(hashlib.sha256(owner.encode()).digest()[:4], "big", signed=True)


class Inbox:
    """See the module docstring."""

    def __init__(self, db: Database, *, owner: str | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.db = db
        self.owner = owner or uuid.uuid4().hex
        self.clock = clock
        self._presence: psycopg.Connection | None = None
        self._presence_lock = threading.Lock()
        self._presence_at = float("-inf")  # when the presence connection last answered
        self._handled = threading.Condition()
        self._active: set[int] = set()  # requests this process claimed and has not finished
        self._reading: set[int] = set()  # of those, the read-only ones (handled in batches)
        self._local = threading.local()  # .batch: the _Batch this thread is handling
        self._loop = Loop("golive-inbox")
        self._stop = self._loop.stopping

    # ------------------------------------------------------------------ lifecycle
    def start(self, redispatch: Callable[[int, bytes, Any], Any], *,
              every: float = 2.0) -> None:
        """Hold the presence lock and recover orphaned requests in the background."""
        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.ensure_presence()
                    self.recover(redispatch)
                    self.settle_own()
                except (DatabaseUnavailable, psycopg.Error) as e:
                    log.warning("inbox recovery: %s", type(e).__name__)
                self._stop.wait(every)
        self._loop.start(loop)

    def stop(self) -> None:
        self._loop.stop()
        self.close()

    # ------------------------------------------------------------------ presence
    def ensure_presence(self, fresh_s: float = 0.0) -> None:
        """Hold this process's owner lock (again, after a lost connection); a connection
        that answered less than ``fresh_s`` seconds ago is not asked again."""
        with self._presence_lock:
            if self._presence is not None and not self._presence.closed:
                if self.clock() - self._presence_at < fresh_s:
                    return
                try:
                    # Under a deadline: a silent partition swallows the query, and without
                    # one this waits forever, holding the lock every claim takes.
                    with self.db.deadline(self._presence, PRESENCE_CHECK_S):
                        self._presence.execute("SELECT 1")
                    self._presence_at = self.clock()
                    return
                except (DatabaseUnavailable, psycopg.Error):
                    self._presence.close()
            conn = self.db.connect()
            try:
                conn.autocommit = True
                with self.db.deadline(conn, PRESENCE_CHECK_S):
                    conn.execute("SELECT pg_advisory_lock(%s, %s)",
                                 (LOCK_NS, owner_key(self.owner)))
            except BaseException:
                conn.close()
                raise
            self._presence, self._presence_at = conn, self.clock()

    def close(self) -> None:
        with self._presence_lock:
            if self._presence is not None:
                self._presence.close()
                self._presence = None

    # ------------------------------------------------------------------ claiming
    def claim(self, limit: int, read_only: int = 0) -> list[dict]:
        """Take up to ``limit`` unclaimed requests, and up to ``read_only`` more that change
        nothing (``is_read_only``), oldest first, as this process's own. They count as being
        handled from here on (``in_flight``), so a later request of the same channel waits
        for them however long they queue here."""
        limit, read_only = max(limit, 0), max(read_only, 0)
        if limit + read_only == 0:
            return []
        # An owner must be alive, or a recovery would take them back (not a round trip per
        # claim: the recovery loop checks every 2 s too).
        self.ensure_presence(fresh_s=PRESENCE_FRESH_S)
        ro = "kind = 'command' AND coalesce(request->'invocation'->>'name', '') = ANY(%(ro)s)"
        with self.db.transaction() as conn:
            # The claim need not wait for its WAL flush: lost in a database crash, the rows
            # are unclaimed again, and the commit that marks one done (flushed) flushes it.
            conn.execute("SET LOCAL synchronous_commit = off")
            rows = conn.execute(
                f"WITH rw AS (SELECT id FROM inbox WHERE state = 'new' AND owner = '' AND NOT"
                f" ({ro}) ORDER BY id LIMIT %(n)s FOR UPDATE SKIP LOCKED),"
                f" ro AS (SELECT id FROM inbox WHERE state = 'new' AND owner = '' AND ({ro})"
                " ORDER BY id LIMIT %(nro)s FOR UPDATE SKIP LOCKED)"
                " UPDATE inbox SET owner = %(me)s WHERE id IN (SELECT id FROM rw UNION ALL"
                " SELECT id FROM ro) RETURNING id, body, kind, request,"
                " id IN (SELECT id FROM ro) AS read_only",
                {"me": self.owner, "n": limit, "nro": read_only, "ro": list(READ_ONLY)}
            ).fetchall()
            rows.sort(key=lambda r: r["id"])
            with self._handled:
                self._active.update(r["id"] for r in rows)
                self._reading.update(r["id"] for r in rows if r["read_only"])
        return rows

    def release(self, inbox_id: int) -> None:
        """A claimed request that will not reach ``handle`` (nothing listens for it)."""
        with self._handled:
            self._finished(inbox_id)

    def settle_unhandled(self, inbox_id: int) -> None:
        """After a lazy half: a request it claimed but never took to ``handle`` is done."""
        with self._handled:
            if inbox_id not in self._active:
                return  # handled (or failed and told so) the usual way
        try:
            self.nothing_to_do(inbox_id)
        except (DatabaseUnavailable, psycopg.Error) as e:  # settle_own marks it later
            log.warning("request %s not settled: %s", inbox_id, type(e).__name__)
        finally:
            self.release(inbox_id)

    def _finished(self, inbox_id: int) -> None:
        """(Holding ``_handled``.) Request ``inbox_id`` is no longer in flight here."""
        self._active.discard(inbox_id)
        self._reading.discard(inbox_id)
        self._handled.notify_all()

    def in_flight(self, *, read_only: bool = True) -> int:
        """Claimed requests not finished; without the read-only ones (``read_only=False``)."""
        with self._handled:
            return len(self._active) - (0 if read_only else len(self._reading))

    def wait_for_room(self, limit: int, timeout: float, *, read_only: bool = True) -> None:
        """Block until fewer than ``limit`` claimed requests (without the read-only ones:
        ``read_only=False``) are unfinished, or ``timeout``."""
        with self._handled:
            self._handled.wait_for(lambda: len(self._active) - (
                0 if read_only else len(self._reading)) < limit, timeout)

    # ------------------------------------------------------------------ handling
    def handle(self, inbox_id: int | None, channel: str | None,
               work: Callable[[], Any]) -> Outcome:
        """Run ``work`` as the one handling of request ``inbox_id`` (None: not in the inbox,
        e.g. Socket Mode or help, which is run as is)."""
        if inbox_id is None:
            work()
            return Outcome.DONE
        batch: _Batch | None = getattr(self._local, "batch", None)
        try:
            self._wait_for_earlier(inbox_id, channel)
            with self.db.transaction(timeout=HANDLE_TIMEOUT_S) as conn:
                # The mark first (it locks the row; one round trip): it commits with what
                # ``work`` does, or rolls back with it.
                if conn.execute("UPDATE inbox SET state = 'done', handled_at = now() WHERE"
                                " id = %s AND state = 'new' RETURNING id",
                                (inbox_id,)).fetchone() is None:
                    return Outcome.SKIPPED  # handled before (by a recovery, another replica)
                with self.db.ambient(conn):
                    work()
            return Outcome.DONE
        except (DatabaseUnavailable, psycopg.OperationalError) as e:
            if batch is not None:  # nothing of the batch commits; each is handled again
                batch.broken = True
                return Outcome.REDO
            log.warning("request %s not handled: the database failed (%s)", inbox_id,
                        type(e).__name__)
            threading.Thread(target=self._drop, args=(inbox_id,), daemon=True,
                             name=f"golive-inbox-drop-{inbox_id}").start()
            return Outcome.FAILED
        finally:
            with self._handled:
                self._finished(inbox_id)

    def after_commit(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` (a request's replies) once what ``handle`` did is committed: now, or,
        inside ``handle_batch``, after the batch's commit (never, if it rolls back)."""
        batch: _Batch | None = getattr(self._local, "batch", None)
        if batch is None:
            fn()
        else:
            batch.after.append(fn)

    def handle_batch(self, rows: Sequence[dict], run: Callable[[dict], Any]
                     ) -> tuple[list[Callable[[], Any]], list[dict]]:
        """Handle claimed requests in one transaction: ``run(row)`` hands each to its lazy
        half in this thread, whose ``handle`` joins the batch (a savepoint of its own).
        Returns what waits for the commit (the replies: the caller runs them) and the rows
        to hand over again one by one when the database failed (nothing of the batch was
        committed or said; they are this process's, in flight, again)."""
        batch = _Batch()
        try:
            with self.db.transaction(timeout=BATCH_TIMEOUT_S) as conn, self.db.ambient(conn):
                # Open the transaction now: a request's ``handle`` then takes a savepoint in
                # it (on an idle connection psycopg would make it a transaction of its own).
                conn.execute("SELECT 1")
                self._local.batch = batch
                try:
                    for row in rows:
                        if batch.broken:
                            break
                        try:
                            run(row)
                        except Exception:  # one bad request must not stop the batch
                            log.exception("request %s could not be handled", row["id"])
                finally:
                    self._local.batch = None
                if batch.broken:
                    raise DatabaseUnavailable("the database failed during a batch")
        except (DatabaseUnavailable, psycopg.OperationalError) as e:
            log.warning("a batch of %d requests rolled back (%s); each is handled again",
                        len(rows), type(e).__name__)
            with self._handled:
                self._active.update(r["id"] for r in rows)  # in flight again, on its own
            return [], list(rows)
        return batch.after, []

    def _wait_for_earlier(self, inbox_id: int, channel: str | None) -> None:
        """Wait until the channel's earlier requests are handled, or could be: another
        replica's may be in flight; one of ours is waited for only while it is being handled
        or has just arrived (one no listener handles would otherwise hold the channel up)."""
        if channel is None:
            return
        give_up = self.clock() + ORDER_WAIT_S
        while True:
            with self.db.transaction() as conn:
                rows = conn.execute(
                    "SELECT id, owner = %s AND received_at < now() - make_interval(secs => %s)"
                    " AS settled FROM inbox WHERE channel = %s AND state = 'new' AND id < %s"
                    " AND received_at > now() - make_interval(secs => %s)",
                    (self.owner, OWN_START_S, channel, inbox_id, ORPHAN_AFTER_S * 10)
                ).fetchall()
            with self._handled:
                earlier = [r for r in rows if not r["settled"] or r["id"] in self._active]
                if not earlier or self.clock() >= give_up:
                    self._active.add(inbox_id)
                    return  # an earlier request still open after the wait is an orphan's
                self._handled.wait(0.05)  # woken when a request of this process is handled

    def _drop(self, inbox_id: int) -> None:
        """The person was told the database is not answering: never apply it later."""
        give_up = self.clock() + DROP_FOR_S
        while self.clock() < give_up:
            try:
                with self.db.transaction() as conn:
                    conn.execute("UPDATE inbox SET state = 'dropped', handled_at = now()"
                                 " WHERE id = %s AND state = 'new'", (inbox_id,))
                return
            except DatabaseUnavailable:
                time.sleep(1.0)  # a background retry while the database is away
        log.error("request %s could not be marked dropped", inbox_id)

    def settle_own(self) -> int:
        """Our requests that no listener handled (an unknown button, a malformed click) are
        done: the app acked them and has nothing more to do."""
        with self._handled:
            active = list(self._active)
        with self.db.transaction() as conn:
            return conn.execute(
                "UPDATE inbox SET state = 'done', handled_at = now() WHERE state = 'new'"
                " AND owner = %s AND received_at < now() - make_interval(secs => %s)"
                " AND NOT (id = ANY(%s))", (self.owner, SETTLE_AFTER_S, active)).rowcount

    def nothing_to_do(self, inbox_id: int) -> None:
        """The app acked the request and has nothing more to do with it (no listener)."""
        with self.db.transaction() as conn:
            conn.execute("UPDATE inbox SET state = 'done', handled_at = now() WHERE id = %s"
                         " AND state = 'new'", (inbox_id,))

    # ------------------------------------------------------------------ recovery
    def orphans(self, limit: int = 20) -> list[dict]:
        """Requests acked by a process that died before handling them, oldest first."""
        out = []
        with self.db.transaction() as conn:
            rows = conn.execute(
                "SELECT id, owner, body, kind, request FROM inbox WHERE state = 'new'"
                " AND owner <> %s"
                " AND owner <> '' AND recovered_at IS NULL AND received_at < now() - make_interval(secs => %s)"
                " ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
                (self.owner, ORPHAN_AFTER_S, limit)).fetchall()
            for row in rows:
                key = owner_key(row["owner"])
                got = conn.execute("SELECT pg_try_advisory_xact_lock(%s, %s) AS ok",
                                   (LOCK_NS, key)).fetchone()["ok"]
                if got:  # nobody holds the owner's lock: the owner is gone
                    # Once: a request that no listener handles (nothing to do) must not come
                    # back every pass.
                    conn.execute("UPDATE inbox SET recovered_at = now() WHERE id = %s",
                                 (row["id"],))
                    out.append(row)
        return out

    def recover(self, redispatch: Callable[[int, bytes, Any], Any]) -> int:
        """Hand every orphaned request back to the app; returns how many."""
        rows = self.orphans()
        for row in rows:
            log.warning("recovering request %s (%s) acked by a process that is gone",
                        row["id"], row["kind"])
            redispatch(row["id"], bytes(row["body"]), row["request"])
        return len(rows)
