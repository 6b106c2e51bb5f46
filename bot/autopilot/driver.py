"""The autopilot (issue 21): `/golive go` runs the night from where it stands.

One more requester, not a new path: each tick locks the active run's autopilot row (``FOR UPDATE
SKIP LOCKED``: two replicas never drive one run twice), reads the run's step states once, asks
:func:`runbook.rules.autopilot.next_moves`, and requests each move through the engine's facade
exactly as the typed command would (``engine.request``: the same policy of the engine, gates,
preflight gate, binding, exactly-once claim), on behalf of the operator who typed `/golive go`.
The requests join the tick's transaction (``Database.ambient``), so the row's update and the
engine's transitions commit together: a process killed mid-tick leaves either both or neither,
and the next tick (here or on another replica) reads the states again, so a step already
requested is never requested twice (the engine also refuses a duplicate; a refusal for a step
that is by then active or done is taken as fine).

When the rules say stop, the row is switched off with the reason in the same transaction as
its notice (outbox key ``autopilot:stop:RUN:N``, posted once in the cutover channel). `/golive
pause` switches it off at once: the running step goes on, nothing after it is requested.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg

from bot.autopilot import deadlines, store
from bot.engine import Refused, Requester
from bot.loops import Loop
from bot.outbox import RUN_CARD
from bot.slack import blocks
from bot.store import repo
from runbook.rules.autopilot import ACTIVE, Moves, Stop, StopReason, fresh_states, next_moves
from runbook.steps.base import REGISTRY

log = logging.getLogger(__name__)

VIA = "autopilot"
TICK_S = 1.0
KEY = "autopilot:stop"


class Autopilot:
    """See the module docstring. ``engine``: the facade (``request``, ``runbook``, ``audit``)."""

    def __init__(self, *, db: Any, engine: Any, outbox: Any,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 tick_s: float = TICK_S, config: Any = None) -> None:
        self.db, self.engine, self.outbox, self.now = db, engine, outbox, now
        self.runbook = engine.runbook
        # the reminders, escalations and "overdue" notices (None without a config)
        self.deadlines = deadlines.DeadlineWatch(
            db=db, runbook=self.runbook, outbox=outbox, config=config, now=now) \
            if config is not None else None
        self.tick_s = tick_s
        self._loop = Loop("golive-autopilot")
        self._wake = threading.Event()

    # ------------------------------------------------------------------ commands
    def go(self, *, user_id: str, channel: str) -> str:
        """Start or resume the autopilot on the active run (the caller asked the policy)."""
        with self.db.transaction() as conn:
            run = repo.active_run(conn)
            if run is None:
                raise Refused("No cutover run is active. Start one with "
                              "`/golive start &lt;rc-tag&gt;`.")
            row = store.get(conn, run["id"], for_update=True)
            if row is not None and row["on"]:
                return (f"The autopilot is already on for run #{run['id']} (started by "
                        f"<@{row['started_by']}>); it waits for "
                        f"{blocks.esc(row['waiting_for'] or 'its next move')}.")
            store.switch_on(conn, run_id=run["id"], by=user_id, now=self.now())
            self._run_card(conn, run["id"], run["channel"])
            self.engine.audit.record(conn, actor=user_id, action="autopilot.go", outcome="ok",
                                     run_id=run["id"], channel=channel,
                                     detail={"resumed": row is not None})
        self.wake()
        return (f"<@{user_id}> turned the autopilot on for run #{run['id']}: it requests every "
                "ungated step whose requirements are met on your behalf and asks for approval "
                "when a gated step is reachable (it never approves). It stops at a failure, at "
                "the canary and before `/golive finish`; `/golive pause` stops it after the "
                "running step.")

    def pause(self, *, user_id: str, channel: str) -> str:
        """Switch it off: the running step goes on, nothing after it is requested."""
        with self.db.transaction() as conn:
            run = repo.active_run(conn)
            if run is None:
                raise Refused("No cutover run is active.")
            row = store.get(conn, run["id"], for_update=True)
            if row is None or not row["on"]:
                return "The autopilot is not on; `/golive go` starts it."
            store.pause(conn, run_id=run["id"], by=user_id, now=self.now())
            self._run_card(conn, run["id"], run["channel"])
            running = [s for s, e in repo.latest_executions(conn, run_id=run["id"]).items()
                       if e["state"] in ACTIVE]
            self.engine.audit.record(conn, actor=user_id, action="autopilot.pause",
                                     outcome="ok", run_id=run["id"], channel=channel,
                                     detail={"left_going": running})
        going = f" `{'`, `'.join(running)}` goes on;" if running else ""
        return (f"<@{user_id}> paused the autopilot of run #{run['id']}:{going} nothing more is "
                "requested by it. `/golive go` resumes.")

    def status(self, run_id: int) -> dict | None:
        """The run's autopilot row (on, started_by, waiting_for, last_reason, ...), or None."""
        with self.db.connection() as conn:
            row = store.get(conn, run_id)
            run = repo.get_run(conn, run_id=run_id)
        if row is not None and row["on"] and run is not None and run["status"] != "active":
            return {**row, "on": False, "last_reason": f"The run ended ({run['status']})."}
        return row

    # ------------------------------------------------------------------ the driver
    def tick(self) -> list[str]:
        """One pass: the step ids requested (gated ones ask for approval). Safe to call from
        any number of threads and processes at once."""
        self._prepare_gated()
        with self.db.transaction() as conn:
            row = store.lock_driving(conn)
            if row is None:
                return []
            with self.db.ambient(conn):
                done = self._drive(conn, row)
        if done and hasattr(self.engine, "wake"):
            self.engine.wake()  # committed now: the worker need not wait for its next poll
        return done

    def _prepare_gated(self) -> None:
        """The plan parts of the gated steps this tick will ask approval for, computed before
        the tick's transaction (seconds of registry, compose and database reads), as a typed
        command's are before the inbox's: the request then binds what was prepared instead of
        computing it within its 5 s budget inside the transaction. Read-only: a stale peek
        only leaves a prepared part unused."""
        with self.db.transaction() as conn:
            row = store.lock_driving(conn)
            if row is None:
                return
            moves = self._moves(conn, row)
        for step_id in moves.ask_approval:
            step = self.runbook.step(step_id)
            self.engine.prepare_request(command=step.command or step.id,
                                        args=self._args(step, row))

    def _drive(self, conn: psycopg.Connection, row: dict) -> list[str]:
        run_id = row["run_id"]
        moves = self._moves(conn, row)
        done: list[str] = []
        me = Requester(VIA, row["channel"])
        for step_id in (*moves.request, *moves.ask_approval):
            step = self.runbook.step(step_id)
            try:
                # on behalf of who typed go: the audit and the card say "autopilot for @them"
                self.engine.request(actor=me, command=step.command or step.id,
                                    args=self._args(step, row),
                                    on_behalf_of=row["started_by"], via=VIA)
                done.append(step_id)
            except Refused as e:
                state = repo.latest_executions(conn, run_id=run_id).get(step_id)
                if state is not None and state["state"] in (*ACTIVE, "succeeded", "skipped"):
                    continue  # someone (a person, another process) asked first: fine
                self._stop(conn, row, f"*{blocks.esc(step.title)}* was refused: {e.message}",
                           "fix what it says, then `/golive go`")
                return done
        if moves.stop is not None:
            self._stop(conn, row, moves.stop.why, self._next(conn, row, moves.stop))
            return done
        after = self._moves(conn, row) if done else moves
        waits = after.waits_for if after.stop is None else moves.waits_for
        if store.waiting(conn, run_id=run_id, waiting_for=waits, now=self.now()):
            self._run_card(conn, run_id, row["channel"])
        return done

    def _next(self, conn: psycopg.Connection, row: dict, stop: Stop) -> str:
        """What is next: for a failure, the step's decision card (guided failure)."""
        if stop.reason is not StopReason.FAILURE or stop.step_id is None:
            return stop.next
        exe = repo.latest_executions(conn, run_id=row["run_id"]).get(stop.step_id)
        attempt = f", attempt {exe['attempt']}" if exe else ""
        return (f"decide on the decision card of *{blocks.esc(self.runbook.step(stop.step_id).title)}*"
                f" (`{stop.step_id}`{attempt}, in this channel): *Take it*, then Retry, Skip, "
                "Roll back, Hold or Abort; after a Retry or a Skip, `/golive go` to resume")

    @staticmethod
    def _args(step: Any, row: dict) -> dict[str, str]:
        """What the typed command would say: ``deploy`` takes the run's RC tag."""
        return {"tag": row["rc_tag"]} if "tag" in step.args and row["rc_tag"] else {}

    def _moves(self, conn: psycopg.Connection, row: dict) -> Moves:
        latest = repo.latest_executions(conn, run_id=row["run_id"])
        states = fresh_states(((s, e["state"], e["finished_at"] or e["created_at"])
                               for s, e in latest.items()), since=row["started_at"])
        return next_moves(self.runbook, states,
                          available={k for k, v in REGISTRY.items() if v.available})

    def _stop(self, conn: psycopg.Connection, row: dict, why: str, nxt: str) -> None:
        text = f"Autopilot stopped: {why}. Next: {nxt}."
        after = store.stopped(conn, run_id=row["run_id"], reason=text, now=self.now())
        self.engine.audit.record(conn, actor=VIA, action="autopilot.stop", outcome="stopped",
                                 run_id=row["run_id"], channel=row["channel"],
                                 detail={"why": why, "next": nxt,
                                         "on_behalf_of": row["started_by"]})
        # in the run card's thread (the card shows the autopilot off and why, issue 21 item 4)
        self.outbox.touch(conn, key=f"{KEY}:{row['run_id']}:{after['stops']}",
                          channel=row["channel"], data={"text": text},
                          thread_key=self.outbox.run_thread(conn, row["run_id"]))
        self._run_card(conn, row["run_id"], row["channel"])

    def _run_card(self, conn: psycopg.Connection, run_id: int, channel: str) -> None:
        """The run card shows the autopilot's state (on, paused, off; what it waits for)."""
        if self.outbox.run_thread(conn, run_id) is not None:
            self.outbox.touch(conn, key=f"{RUN_CARD}:{run_id}", channel=channel)

    # ------------------------------------------------------------------ the loop
    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._loop.start(self._run)

    def stop(self) -> None:
        self._loop.stop()
        self._wake.set()

    def _run(self) -> None:
        while not self._loop.stopping.is_set():
            try:
                self.tick()
                if self.deadlines is not None:
                    self.deadlines.tick()
            except Exception:  # the database may be away: try again next tick
                log.exception("autopilot tick failed")
            self._wake.wait(self.tick_s)
            self._wake.clear()


def render_stop(conn: psycopg.Connection, ref: str, data: Any) -> dict | None:
    """The stop notice: why the autopilot stopped and what is next."""
    text = str((data or {}).get("text") or "")
    if not text:
        return None
    return blocks.message(text[:3000], [blocks.section(blocks.clip(text))])


def register(sender: Any) -> None:
    """Tell the outbox sender how to render the autopilot's notices and the deadlines'."""
    sender.register(KEY, render_stop)
    deadlines.register(sender)
