"""The watches' shell: on the leader, schedule each watch (APScheduler) while its run wants
them, save every measurement, and record which messages must now show something new.

What should run is in the database (``watch_control``): the leader sets it when the run's
traffic-open step succeeds, ``/golive watch start|stop`` sets it by hand, and the leader
reconciles every second. Nothing here calls Slack: each measurement touches the watch's
outbox row, whose sender paces and coalesces the updates.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bot.store import repo
from bot.watches import store
from bot.watches.leader import Leader, NotLeader
from runbook.watches.analysis import WatchEvent, new_state

log = logging.getLogger(__name__)

AUTO = "traffic-open"  # who started watches that started themselves


def watch_key(run_id: int, name: str) -> str:
    return f"watch:run:{run_id}:{name}"


def alert_keys(alert_id: int, channels: list[str]) -> list[tuple[str, str]]:
    return [(f"watch:alert:{alert_id}:{c}", c) for c in channels]


def traffic_opened(conn: Any, runbook: Any, run_id: int) -> bool:
    """Whether a step of the run that opens traffic has succeeded (its newest attempt)."""
    ids = [s.id for s in runbook.cutover_steps()
           if s.kind == "traffic" and s.params.get("action") == "open"]
    latest = repo.latest_executions(conn, run_id=run_id)
    return any(latest.get(i, {}).get("state") == "succeeded" for i in ids)


PAUSED_IN_MAINTENANCE = ("health",)
"""Watches that measure what a planned maintenance takes down: paused while it is on."""


def planned_maintenance(conn: Any, runbook: Any, run_id: int) -> str:
    """Why the run is in its planned maintenance ("" when not): its own cutover step put the
    maintenance page up (its newest success is an "on") and traffic has not opened since."""
    if traffic_opened(conn, runbook, run_id):
        return ""
    latest = repo.latest_executions(conn, run_id=run_id)
    flips = sorted(((e.get("finished_at"), e["id"], s) for s in runbook.cutover_steps()
                    if s.kind == "maintenance" and (e := latest.get(s.id))
                    and e["state"] == "succeeded"), key=lambda x: (str(x[0]), x[1]))
    if not flips or str(flips[-1][2].params.get("mode", "on")) != "on":
        return ""
    return f"planned maintenance: `{flips[-1][2].id}` is on, traffic not open yet"


def raise_alert(conn: Any, outbox: Any, *, channels: list[str], run_id: int | None, kind: str,
                watch: str | None, text: str, evidence: dict, by: str, now: datetime) -> int:
    """Record an alert and the messages that show it, in the caller's transaction."""
    alert_id = store.add_alert(conn, run_id=run_id, kind=kind, watch=watch, text=text,
                               evidence=evidence, by=by, now=now)
    for key, channel in alert_keys(alert_id, channels):
        outbox.touch(conn, key=key, channel=channel)
    return alert_id


class WatchRoom:
    """See the module docstring. ``build(config)`` makes the WatchSet (injected in tests)."""

    def __init__(self, *, db: Any, outbox: Any, config: Any, runbook: Any,
                 build: Callable[[Any], Any] | None = None,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 retry_s: float = 3.0):
        from runbook.watches.watchset import WatchSet  # httpx, psycopg, Docker: the shell's

        self.db, self.outbox, self.config, self.runbook = db, outbox, config, runbook
        self.build = build or WatchSet.from_config
        self.now = now
        self.me = f"{socket.gethostname()}:{os.getpid()}"
        self.channels = [config.channels.cutover, *config.channels.incident]
        self.leader = Leader(db, retry_s=retry_s, on_lost=self.halt,
                             while_leading=self.reconcile)
        self._lock = threading.RLock()
        self._run_id: int | None = None
        self._ws: Any = None
        self._scheduler: BackgroundScheduler | None = None

    def start(self) -> None:
        """Campaign for leadership; the leader runs the watches while its run wants them."""
        self.leader.start()

    def stop(self) -> None:
        self.leader.stop()
        self.halt()

    @property
    def running(self) -> int | None:
        """The run whose watches this process runs now."""
        return self._run_id

    def streams_connected(self) -> bool:
        """Whether every log stream the running watches read is connected (a file tail is
        at the file's end, ready to count what is written next); False when none run."""
        ws = self._ws
        return ws is not None and all(t.connected for t in getattr(ws, "tails", ()))

    # --- reconcile: what should run vs what runs --------------------------------------------
    def reconcile(self) -> None:
        """On the leader: start or stop the watches to match the database (every second)."""
        with self.leader.write() as conn:
            run = repo.active_run(conn)
            desired = None
            if run is not None:
                if traffic_opened(conn, self.runbook, run["id"]):
                    store.set_control(conn, run_id=run["id"], desired="running", by=AUTO,
                                      now=self.now(), only_if_unset=True)
                ctl = store.control(conn, run["id"])
                desired = ctl["desired"] if ctl else None
        want = run["id"] if run is not None and desired == "running" else None
        if want != self._run_id:
            self.halt()
            if want is not None:
                self._begin(want)

    def _begin(self, run_id: int) -> None:
        now = self.now()
        ws = self.build(self.config)
        with self.leader.write() as conn:
            saved = store.states(conn, run_id)
            # each watch's live card is a reply in the run card's thread (issue 21 item 4);
            # its alerts stay top-level
            thread = self.outbox.run_thread(conn, run_id)
            ws.start(now)  # starts the log tails; the states are then the saved ones
            for name, w in ws.watches.items():
                row = saved.get(name)
                if row is not None and "problem" not in row["state"]:
                    ws.states[name] = store.load(w.spec, row["state"])
                else:
                    ws.states[name] = new_state(w.spec, now)
                    store.save_state(conn, run_id=run_id, name=name,
                                     st=store.dump(ws.states[name]), by=self.me, now=now,
                                     measured=False)
                self.outbox.touch(conn, key=watch_key(run_id, name),
                                  channel=self.config.channels.cutover, thread_key=thread)
            for name, why in ws.problems.items():
                store.save_state(conn, run_id=run_id, name=name, st={"problem": why},
                                 by=self.me, now=now, measured=False)
                self.outbox.touch(conn, key=watch_key(run_id, name),
                                  channel=self.config.channels.cutover, thread_key=thread)
            for name, why in getattr(ws, "off", {}).items():  # listed as off, never run
                store.save_state(conn, run_id=run_id, name=name, st={"off": why},
                                 by=self.me, now=now, measured=False)
                self.outbox.touch(conn, key=watch_key(run_id, name),
                                  channel=self.config.channels.cutover, thread_key=thread)
        sched = BackgroundScheduler(
            timezone=UTC, executors={"default": ThreadPoolExecutor(max(1, len(ws.watches)))},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None})
        for name, w in ws.watches.items():
            first = max(ws.states[name].next_due, now)
            sched.add_job(self._tick, IntervalTrigger(seconds=w.spec.interval_s,
                                                      start_date=first, timezone=UTC),
                          args=(run_id, name), id=name, name=f"watch {name}")
        with self._lock:
            self._ws, self._run_id, self._scheduler = ws, run_id, sched
        sched.start()
        log.info("watches: running %s for run %s", ", ".join(ws.watches), run_id)

    def halt(self) -> None:
        """Stop measuring (the states stay in the database for whoever continues)."""
        with self._lock:
            sched, ws = self._scheduler, self._ws
            self._scheduler, self._ws, self._run_id = None, None, None
        if sched is not None:
            sched.shutdown(wait=True)
        if ws is not None:
            ws.stop()

    # --- one measurement -----------------------------------------------------------------
    def _tick(self, run_id: int, name: str) -> None:
        ws = self._ws
        if ws is None or self._run_id != run_id:
            return
        paused = ""
        if name in PAUSED_IN_MAINTENANCE:
            try:
                with self.db.transaction() as conn:
                    paused = planned_maintenance(conn, self.runbook, run_id)
            except Exception as e:  # noqa: BLE001 - unknown: measure, as without maintenance
                log.warning("watches: could not read the run's maintenance: %s",
                            type(e).__name__)
        state, events = ws.tick(name, self.now(), paused=paused)
        now = self.now()
        try:
            with self.leader.write() as conn:
                store.save_state(conn, run_id=run_id, name=name, st=store.dump(state),
                                 by=self.me, now=now, measured=True)
                key = watch_key(run_id, name)
                self.outbox.touch(conn, key=key, channel=self.config.channels.cutover)
                for e in events:
                    self._tell(conn, run_id, key, e, now)
        except NotLeader:
            return  # deposed while measuring: the new leader measures again
        except Exception as e:  # noqa: BLE001 - one failed save must not stop the schedule
            log.warning("watches: could not save %s: %s", name, type(e).__name__)

    def _tell(self, conn: Any, run_id: int, key: str, e: WatchEvent, now: datetime) -> None:
        if e.kind == "recovered":
            return  # the state change "breach → ok" already says it
        if e.kind == "rollback_trigger":
            raise_alert(conn, self.outbox, channels=self.channels, run_id=run_id,
                        kind="rollback_trigger", watch=e.watch, text=e.text,
                        evidence=e.evidence, by="watch", now=now)
        line = f"{e.at.astimezone(UTC):%H:%M:%S} {_MARK.get(e.kind, '•')} {e.text}"
        event_id = store.add_line(conn, run_id=run_id, name=e.watch, kind=e.kind, line=line,
                                  now=now)
        self.outbox.touch(conn, key=f"{store.EVENT_KEY}{event_id}",
                          channel=self.config.channels.cutover, thread_key=key)

    # --- what /golive watch shows ------------------------------------------------------------
    def describe(self, conn: Any, run_id: int) -> list[tuple[str, dict]]:
        """Each watch of a run that has a state, by name."""
        return [(n, r["state"]) for n, r in store.states(conn, run_id).items()]


_MARK = {"state_changed": "↪", "rollback_trigger": "🚨", "dry_run_trigger": "🧪",
         "needs_person": "🙋", "measurement_error": "⚠️"}
