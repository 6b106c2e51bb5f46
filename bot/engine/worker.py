"""The worker: claims queued steps and runs each exactly once; the reaper of dead workers' steps.

Never two live executions of one step, whatever the timing:
- the claim is a compare-and-set ``queued -> running`` under the row lock (``FOR UPDATE SKIP
  LOCKED``), in the transaction that takes the step's session advisory lock and sets its
  heartbeat (``bot.engine.claim``); the database allows one running step per run and one live
  attempt per step;
- the step runs in its own process group (``bot.engine.isolation``); at its deadline the
  worker kills the group and reaps it, and only then records ``interrupted`` and releases the
  lock; the child kills itself if the worker dies or stops renewing the heartbeat;
- the reaper takes a running step for dead only when its lock is free *and* its heartbeat is
  older than the lease (see ``reap_interrupted``).
When a step fails or is interrupted, every queued step of its run is cancelled in the same
transaction: nothing queued starts on its own until a person asks again.
"""

from __future__ import annotations

import logging
import threading
import time

import psycopg

from bot.engine import executions
from bot.engine.binding import step_params
from bot.engine.claim import Claims
from bot.engine.core import ROLLBACK
from bot.engine.isolation import Ended, StepProcess
from bot.slack.run_view import RunView
from bot.store import repo
from bot.store.db import DatabaseUnavailable
from runbook.adapters import http as probes
from runbook.adapters import stepkit
from runbook.model import Step
from runbook.steps.base import REGISTRY, StepContext

log = logging.getLogger(__name__)
PROGRESS_EVERY_S = 0.5
LIVE_LOG_AFTER_S = 1.0
LONG_OUTPUT_CHARS = 2800  # past this a step's output goes out as a file


class Worker(Claims):
    """See the module docstring."""

    def reap_interrupted(self) -> int:
        """Running steps whose worker is gone become interrupted; the channel is told.

        Gone means both: nobody holds the step's advisory lock, and its heartbeat is older than
        ``deps.lease_s`` by the database's clock. A worker whose step connection dropped (a
        network blip, a proxy restart) loses the lock but keeps renewing the heartbeat over
        fresh connections, so its live step is left alone. A worker that cannot renew for
        ``_fence_s`` has the step's process group killed by the step process itself, before
        the lease runs out, so when a reaper acts nothing of the step runs any more.
        """
        found: list[int] = []
        with self.db.connection() as conn:
            conn.autocommit = True
            try:
                for exe in repo.running_executions(conn):
                    if not repo.try_lock_execution(conn, execution_id=exe["id"]):
                        continue  # its worker is alive and holds the lock
                    try:
                        with conn.transaction():
                            moved = executions.interrupt_if_stale(
                                conn, execution_id=exe["id"], lease_s=self.deps.lease_s,
                                now=self.deps.now(),
                                error="outcome unknown: the bot stopped while this step ran")
                            if moved:
                                self._audit(conn, actor="golive", channel=exe["channel"],
                                            action="step.interrupted", outcome="interrupted",
                                            run_id=exe["run_id"],
                                            detail={"step": exe["step_id"],
                                                    "worker": exe["claimed_by"]})
                                self.notices.interrupted(conn, moved)
                                self._hold_run(conn, moved, "interrupted")
                                if self.runbook.step(moved["step_id"]).phase == ROLLBACK:
                                    self._rollback_ended(conn, repo.get_run(
                                        conn, run_id=moved["run_id"]))
                                found.append(exe["id"])
                    finally:
                        repo.unlock_execution(conn, execution_id=exe["id"])
            finally:
                conn.autocommit = False
        return len(found)

    def _hold_run(self, conn: psycopg.Connection, exe: dict, outcome: str) -> list[int]:
        """Cancel every queued step of ``exe``'s run: a person decides again (override or not)."""
        rows = executions.hold_queued(conn, run_id=exe["run_id"], now=self.deps.now(),
                               error=f"cancelled: {exe['step_id']} {outcome}; request it "
                                     "again if it should still run")
        for row in rows:
            self.notices.step_changed(conn, row)
        if rows:
            self._audit(conn, actor="golive", channel=exe["channel"], action="step.held",
                        outcome="cancelled", run_id=exe["run_id"],
                        detail={"after": exe["step_id"], "outcome": outcome,
                                "steps": [r["step_id"] for r in rows]})
        return [r["id"] for r in rows]

    @property
    def _fence_s(self) -> float:
        """A step process that has not heard of a renewed heartbeat this long kills itself:
        well inside the lease, so it is dead before any reaper may take the step for dead."""
        return max(2 * self.deps.heartbeat_s, self.deps.lease_s * 0.6)

    # ------------------------------------------------------------------ the worker
    def start_worker(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._worker_loop, name="golive-worker",
                                            daemon=True)
            self._thread.start()

    def stop_worker(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout)

    def wake(self) -> None:
        self._wake.set()

    def _worker_loop(self) -> None:
        last_maintenance = float("-inf")
        try:  # now, not in the first step's time
            stepkit.prepare_step_processes(self.deps.target)
        except Exception as e:  # noqa: BLE001 - each step process finds out for itself
            log.info("step processes not prepared: %s", type(e).__name__)
        while not self._stop.is_set():
            try:
                if self.deps.clock() - last_maintenance >= 2.0:
                    last_maintenance = self.deps.clock()
                    self.reap_interrupted()
                    self.expire_approvals()
                while not self._stop.is_set() and self.run_next():
                    pass
            except Exception as e:  # the worker must outlive a database outage  # noqa: BLE001 - error boundary
                log.warning("worker: %s", str(e).splitlines()[0] if str(e) else type(e).__name__)
            self._wake.wait(timeout=1.0)
            self._wake.clear()

    def run_next(self) -> bool:
        """Claim one runnable queued step and run it to its end; False when none was runnable."""
        with self.db.connection() as probe:
            if not repo.has_steps_in(probe, ("queued",)):
                return False
        # The step's own connection: its session holds the advisory lock while the step runs.
        conn = self.db.connect()
        try:
            renewed_at = time.monotonic()  # no later than the heartbeat the claim sets
            token = self.db.watchdog.arm(conn, 2 * self.db.timeout)
            try:
                claimed = self._claim(conn)
            finally:
                self.db.watchdog.disarm(token)
            if claimed is None:
                return False
            self._execute(conn, *claimed, renewed_at=renewed_at)
            return True
        finally:
            conn.close()  # also releases the advisory lock if anything above failed

    def _execute(self, conn: psycopg.Connection, exe: dict, run: dict, step: Step, *,
                 renewed_at: float) -> None:
        lines: list[str] = []
        started = self.deps.clock()
        recorded = [float("-inf")]  # when the live log was last written to the outbox

        def progress(text: str) -> None:
            lines.append(str(self.deps.mask(text))[:500])
            # A quick step's log shows on its card; only a step still running after a second
            # gets a live log in the thread. The sender shows one update a second at most.
            now = self.deps.clock()
            if now - started >= LIVE_LOG_AFTER_S and now - recorded[0] >= PROGRESS_EVERY_S:
                recorded[0] = self.deps.clock()
                with self.db.transaction() as tx:
                    self.notices.progress(tx, exe, lines)

        params = step_params(step, exe["params"])  # exactly what the approval bound
        ctx = StepContext(run_id=run["id"], step_id=step.id, params=params,
                          facts=dict(run["facts"]), target=self.deps.target, progress=progress,
                          deadline=self.deps.clock() + step.timeout_s, clock=self.deps.clock,
                          sleep=self.deps.sleep, secrets=self.deps.secrets,
                          config=self.deps.config)

        def record(kind: str, payload: dict) -> None:
            self._preflight_record(exe, kind, payload)

        ended = self._supervise(exe["id"], step, ctx, progress, renewed_at, record)
        outcome, summary, detail, error, facts = "succeeded", "", "", None, {}
        if ended.kind == "result":
            summary, detail, facts = ended.value.summary, ended.value.detail, dict(ended.value.facts)
        elif ended.kind == "timeout":
            outcome, error = "interrupted", (f"timed out after {step.timeout_s}s; the step was "
                                             "stopped (its processes killed), outcome unknown")
        elif ended.kind == "vanished":
            outcome, error = "interrupted", ("outcome unknown: the step's process ended without "
                                             "a result (it stops itself when the bot loses its "
                                             "database)")
        elif ended.kind in ("failed", "not_available"):
            outcome, error, facts = "failed", ended.message, dict(ended.facts)
        else:  # a bug in a step: record it, never crash the worker
            log.error("step %s crashed: %s", step.id, self.deps.mask(ended.message))
            outcome, error = "failed", f"unexpected error: {ended.message}"
        duration = self.deps.clock() - started
        self._record(exe, run, step, outcome=outcome, summary=summary, detail=detail,
                     error=error, facts=facts, lines=lines, duration=duration)
        try:
            conn.execute("SELECT pg_advisory_unlock(%s, %s)", (repo.LOCK_NS, exe["id"]))
            conn.commit()
        except psycopg.Error:
            pass  # the step connection dropped: its lock went with it

    def _supervise(self, exe_id: int, step: Step, ctx: StepContext, progress, renewed_at: float,
                   record=None) -> Ended:
        """Run the step in its own process group until it ends or its deadline (+ grace)
        passes; either way the group is killed and reaped before this returns."""
        self._before_fork()
        proc = StepProcess(REGISTRY[step.kind].run, ctx, fence_s=self._fence_s,
                           renewed_at=renewed_at)
        stop = threading.Event()
        beat = threading.Thread(target=self._beat, args=(exe_id, proc, stop),
                                name=f"golive-heartbeat-{exe_id}", daemon=True)
        beat.start()
        deadline = self.deps.clock() + step.timeout_s + self.deps.step_grace
        try:
            while True:
                left = deadline - self.deps.clock()
                if left <= 0:
                    return Ended("timeout")
                msg = proc.next(min(left, 0.5))
                if isinstance(msg, Ended):
                    return msg
                if msg is not None:
                    try:
                        if msg[0] == "record":
                            if record is not None:
                                record(msg[1], msg[2])
                        else:
                            progress(msg[1])
                    except Exception:  # database trouble must not stop supervision
                        log.warning("step %s: progress not recorded", step.id, exc_info=True)
        finally:
            proc.kill()  # the group, and anything the step left behind: now it is over
            stop.set()
            beat.join()

    @staticmethod
    def _before_fork() -> None:
        """The TLS contexts every step process would otherwise build for its probes, built
        once here and inherited through the fork (the worker loop also looks up the compose
        CLI once: ``stepkit.prepare_step_processes``)."""
        try:
            probes.before_fork()
        except Exception:  # a step process builds its own then
            log.warning("could not prepare TLS contexts for step processes", exc_info=True)

    def _beat(self, exe_id: int, proc: StepProcess, stop: threading.Event) -> None:
        """Renew the step's heartbeat over fresh connections; tell the step process each time."""
        while not stop.wait(self.deps.heartbeat_s):
            sent = time.monotonic()  # the renewal is no older than this, whatever the network
            try:
                with self.db.connection() as c:
                    alive = executions.heartbeat(c, execution_id=exe_id)
            except (DatabaseUnavailable, psycopg.Error) as e:
                log.warning("heartbeat of step %s not renewed: %s", exe_id, type(e).__name__)
                continue
            if alive:
                proc.renew(sent)

    def _record(self, exe: dict, run: dict, step: Step, *, outcome: str, summary: str,
                detail: str, error: str | None, facts: dict, lines: list[str],
                duration: float) -> None:
        """Record the outcome (the step is already over) and what the channel must now see.
        Retried while the database is away; if it never answers, the reaper records "outcome
        unknown"."""
        mask = self.deps.mask
        give_up = time.monotonic() + self.deps.lease_s
        while True:
            try:
                with self.db.transaction() as tx:
                    moved = executions.move(
                        tx, execution_id=exe["id"], event=executions.OUTCOME_EVENT[outcome],
                        now=self.deps.now(), summary=mask(summary) or None,
                        detail=mask(detail) or None, error=mask(error) if error else None,
                        progress=mask("\n".join(lines[-50:])))
                    if moved is None:
                        log.error("step %s ended %s but was no longer running", step.id, outcome)
                        return
                    repo.merge_run_facts(tx, run_id=run["id"], facts=mask(facts))
                    self._audit(tx, actor="golive", channel=exe["channel"],
                                action="step.finished", outcome=outcome, run_id=run["id"],
                                detail={"step": step.id, "attempt": exe["attempt"],
                                        "seconds": round(duration, 3), "summary": summary,
                                        "error": error})
                    self._announce(tx, moved, run, step, lines)
                    if outcome != "succeeded":
                        self._hold_run(tx, moved, outcome)
                    if step.phase == ROLLBACK and (outcome != "succeeded"
                                                   or step == self.runbook.rollback[-1]):
                        self._rollback_ended(tx, run)  # the timeline: done, or where it stopped
                    return
            except DatabaseUnavailable as e:
                if time.monotonic() >= give_up:
                    log.error("step %s ended %s; not recorded (%s)", step.id, outcome, e)
                    return
                self._stop.wait(0.5)

    def _announce(self, conn: psycopg.Connection, exe: dict, run: dict, step: Step,
                  lines: list[str]) -> None:
        """What the channel must see of a step's end, in the transaction that records it."""
        if exe["state"] == "interrupted":
            self.notices.interrupted(conn, exe)
        else:
            self.notices.step_changed(conn, exe, final=True)  # the result: no debounce to wait out
        if lines and self.deps.outbox.exists(conn, f"progress:exe:{exe['id']}"):
            self.notices.progress(conn, exe, lines)  # the live log's last lines, past the throttle
        if exe.get("detail") and len(exe["detail"]) > LONG_OUTPUT_CHARS:
            self.notices.output_file(conn, exe)
        if exe["state"] != "succeeded":
            return
        # The summary closes the cutover (the same "done" that status shows) or a rollback.
        if step.phase == ROLLBACK:
            if step == self.runbook.rollback[-1]:
                self.notices.summary_changed(conn, run)
            return
        executions = repo.executions(conn, run_id=run["id"])
        view = RunView(run=run, runbook=self.runbook, executions=executions,
                       approvals=[], votes={},
                       available={k: v.available for k, v in REGISTRY.items()})
        # The summary appears when the step's phase is through (T-0: traffic open), whether
        # or not the preflight was overridden, and is brought up to date as later phases end:
        # one message, updated in place.
        if view.phase_done(step.phase):
            self.notices.summary_changed(conn, run)
