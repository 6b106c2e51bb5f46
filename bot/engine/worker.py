"""The worker: the loop, and the step runner that claims queued steps and runs each exactly once.

Never two live executions of one step, whatever the timing:
- the claim is a compare-and-set ``queued -> running`` under the row lock (``FOR UPDATE SKIP
  LOCKED``), in the transaction that takes the step's session advisory lock and sets its
  heartbeat (``bot.engine.claim``); the database allows one running step per run and one live
  attempt per step;
- the step runs in its own process group (``bot.engine.isolation``); at its deadline the
  worker kills the group and reaps it, and only then records ``interrupted`` and releases the
  lock; the child kills itself if the worker dies or stops renewing the heartbeat;
- the reaper takes a running step for dead only when its lock is free *and* its heartbeat is
  older than the lease (``bot.engine.reaper``).
When a step fails or is interrupted, every queued step of its run is cancelled in the same
transaction: nothing queued starts on its own until a person asks again.
"""

from __future__ import annotations

import logging
import threading
import time

import psycopg

from bot.engine import executions
from bot.engine.approvals import Approvals
from bot.engine.binding import step_params
from bot.engine.claim import Claimer
from bot.engine.core import ROLLBACK, Shared
from bot.engine.isolation import Ended, StepProcess
from bot.engine.plan_certification import PlanCertifier
from bot.engine.plan_drift import PlanDrift
from bot.engine.preflight import PreflightGate
from bot.engine.reaper import Reaper, hold_run
from bot.engine.rollback import RollbackPlanner
from bot.slack.run_view import RunView
from bot.store import repo
from bot.store.db import DatabaseUnavailable
from runbook.adapters import http as probes
from runbook.adapters import stepkit
from runbook.model import Step
from runbook.plan.model import Plan
from runbook.steps.base import REGISTRY, StepContext

log = logging.getLogger(__name__)
PROGRESS_EVERY_S = 0.5
LIVE_LOG_AFTER_S = 1.0
LONG_OUTPUT_CHARS = 2800  # past this a step's output goes out as a file


class StepRunner:
    """Claims one runnable step (``Claimer``) and runs it to its end in its own process group,
    then records its outcome and what the channel must see."""

    def __init__(self, shared: Shared, *, claimer: Claimer, preflight: PreflightGate,
                 planner: RollbackPlanner, plan_drift: PlanDrift,
                 plan_certifier: PlanCertifier):
        self._s = shared
        self._drift = plan_drift
        self._certifier = plan_certifier
        self._db = shared.db
        self._deps = shared.deps
        self._runbook = shared.runbook
        self._claimer = claimer
        self._preflight = preflight
        self._planner = planner

    @property
    def _fence_s(self) -> float:
        """A step process that has not heard of a renewed heartbeat this long kills itself:
        well inside the lease, so it is dead before any reaper may take the step for dead."""
        return max(2 * self._deps.heartbeat_s, self._deps.lease_s * 0.6)

    def run_next(self) -> bool:
        """Claim one runnable queued step and run it to its end; False when none was runnable."""
        with self._db.connection() as probe:
            if not repo.has_steps_in(probe, ("queued",)):
                return False
        # The plan parts of what could start, recomputed before the claim's transaction (the
        # registry, compose and the database take seconds): the claim compares them.
        fresh = self._drift.before_claim()
        # The step's own connection: its session holds the advisory lock while the step runs.
        conn = self._db.connect()
        try:
            renewed_at = time.monotonic()  # no later than the heartbeat the claim sets
            token = self._db.watchdog.arm(conn, 2 * self._db.timeout)
            try:
                claimed = self._claimer.claim(conn, fresh)
            finally:
                self._db.watchdog.disarm(token)
            if claimed is None:
                return False
            self._execute(conn, *claimed, renewed_at=renewed_at,
                          plan=fresh.plans.get(claimed[0]["id"]))
            return True
        finally:
            conn.close()  # also releases the advisory lock if anything above failed

    def _execute(self, conn: psycopg.Connection, exe: dict, run: dict, step: Step, *,
                 renewed_at: float, plan: Plan | None = None) -> None:
        lines: list[str] = []
        started = self._deps.clock()
        recorded = [float("-inf")]  # when the live log was last written to the outbox

        def progress(text: str) -> None:
            lines.append(str(self._deps.mask(text))[:500])
            # A quick step's log shows on its card; only a step still running after a second
            # gets a live log in the thread. The sender shows one update a second at most.
            now = self._deps.clock()
            if now - started >= LIVE_LOG_AFTER_S and now - recorded[0] >= PROGRESS_EVERY_S:
                recorded[0] = self._deps.clock()
                with self._db.transaction() as tx:
                    self._s.notices.progress(tx, exe, lines)

        params = step_params(step, exe["params"])  # exactly what the approval bound
        ctx = StepContext(run_id=run["id"], step_id=step.id, params=params,
                          facts=dict(run["facts"]), target=self._deps.target, progress=progress,
                          deadline=self._deps.clock() + step.timeout_s, clock=self._deps.clock,
                          sleep=self._deps.sleep, secrets=self._deps.secrets,
                          config=self._deps.config)

        def record(kind: str, payload: dict) -> None:
            self._preflight.record(exe, kind, payload)

        certify_with = self._certifier.while_running(exe, run, step, params, plan)

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
            log.error("step %s crashed: %s", step.id, self._deps.mask(ended.message))
            outcome, error = "failed", f"unexpected error: {ended.message}"
        cert, against = None, ""
        if outcome == "succeeded":  # what runs is what was approved, or the step failed
            cert, against = self._certifier.certify(exe, step, params, certify_with)
            if cert is not None and not cert.certified:
                outcome, error = "failed", self._certifier.not_certified(cert)
        duration = self._deps.clock() - started
        self._record(exe, run, step, outcome=outcome, summary=summary, detail=detail,
                     error=error, facts=facts, lines=lines, duration=duration,
                     certification=self._certifier.fact(cert, against) if cert else None)
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
        deadline = self._deps.clock() + step.timeout_s + self._deps.step_grace
        try:
            while True:
                left = deadline - self._deps.clock()
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
        while not stop.wait(self._deps.heartbeat_s):
            sent = time.monotonic()  # the renewal is no older than this, whatever the network
            try:
                with self._db.connection() as c:
                    alive = executions.heartbeat(c, execution_id=exe_id)
            except (DatabaseUnavailable, psycopg.Error) as e:
                log.warning("heartbeat of step %s not renewed: %s", exe_id, type(e).__name__)
                continue
            if alive:
                proc.renew(sent)

    def _record(self, exe: dict, run: dict, step: Step, *, outcome: str, summary: str,
                detail: str, error: str | None, facts: dict, lines: list[str],
                duration: float, certification: dict | None = None) -> None:
        """Record the outcome (the step is already over) and what the channel must now see.
        Retried while the database is away; if it never answers, the reaper records "outcome
        unknown"."""
        mask = self._deps.mask
        give_up = time.monotonic() + self._deps.lease_s
        while True:
            try:
                with self._db.transaction() as tx:
                    moved = executions.move(
                        tx, execution_id=exe["id"], event=executions.OUTCOME_EVENT[outcome],
                        now=self._deps.now(), summary=mask(summary) or None,
                        detail=mask(detail) or None, error=mask(error) if error else None,
                        progress=mask("\n".join(lines[-50:])))
                    if moved is None:
                        log.error("step %s ended %s but was no longer running", step.id, outcome)
                        return
                    repo.merge_run_facts(tx, run_id=run["id"], facts=mask(facts))
                    if certification is not None:  # what the certification compared
                        self._s.audit.record(
                            tx, actor="golive", channel=exe["channel"], action="step.certified",
                            outcome="certified" if certification["certified"] else
                            "not_certified", run_id=run["id"],
                            detail={**certification, "attempt": exe["attempt"]})
                    self._s.audit.record(tx, actor="golive", channel=exe["channel"],
                                         action="step.finished", outcome=outcome, run_id=run["id"],
                                         detail={"step": step.id, "attempt": exe["attempt"],
                                                 "seconds": round(duration, 3), "summary": summary,
                                                 "error": error})
                    self._announce(tx, moved, run, step, lines)
                    if outcome != "succeeded":
                        hold_run(self._s, tx, moved, outcome)
                    if step.phase == ROLLBACK and (outcome != "succeeded"
                                                   or step == self._runbook.rollback[-1]):
                        self._planner.ended(tx, run)  # the timeline: done, or where it stopped
                    return
            except DatabaseUnavailable as e:
                if time.monotonic() >= give_up:
                    log.error("step %s ended %s; not recorded (%s)", step.id, outcome, e)
                    return
                self._s.stop.wait(0.5)

    def _announce(self, conn: psycopg.Connection, exe: dict, run: dict, step: Step,
                  lines: list[str]) -> None:
        """What the channel must see of a step's end, in the transaction that records it."""
        if exe["state"] == "interrupted":
            self._s.notices.interrupted(conn, exe)
        else:
            self._s.notices.step_changed(conn, exe, final=True)  # the result: no debounce to wait out
        if lines and self._s.notices.exists(conn, f"progress:exe:{exe['id']}"):
            self._s.notices.progress(conn, exe, lines)  # the live log's last lines, past the throttle
        if exe.get("detail") and len(exe["detail"]) > LONG_OUTPUT_CHARS:
            self._s.notices.output_file(conn, exe)
        if exe["state"] != "succeeded":
            return
        # The summary closes the cutover (the same "done" that status shows) or a rollback.
        if step.phase == ROLLBACK:
            if step == self._runbook.rollback[-1]:
                self._s.notices.summary_changed(conn, run)
            return
        executions = repo.executions(conn, run_id=run["id"])
        view = RunView(run=run, runbook=self._runbook, executions=executions,
                       approvals=[], votes={},
                       available={k: v.available for k, v in REGISTRY.items()})
        # The summary appears when the step's phase is through (T-0: traffic open), whether
        # or not the preflight was overridden, and is brought up to date as later phases end:
        # one message, updated in place.
        if view.phase_done(step.phase):
            self._s.notices.summary_changed(conn, run)


class WorkerLoop:
    """The worker thread: reaps dead workers' steps and expires approvals every two seconds,
    runs what is queued, sleeps until woken (``Shared.wake``) or a second passes."""

    def __init__(self, shared: Shared, *, runner: StepRunner, reaper: Reaper,
                 approvals: Approvals):
        self._s = shared
        self._deps = shared.deps
        self._runner = runner
        self._reaper = reaper
        self._approvals = approvals
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="golive-worker",
                                            daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._s.stop.set()
        self._s.wake.set()
        if self._thread:
            self._thread.join(timeout)

    def wake(self) -> None:
        self._s.wake.set()

    def _loop(self) -> None:
        last_maintenance = float("-inf")
        try:  # now, not in the first step's time
            stepkit.prepare_step_processes(self._deps.target)
        except Exception as e:  # noqa: BLE001 - each step process finds out for itself
            log.info("step processes not prepared: %s", type(e).__name__)
        while not self._s.stop.is_set():
            try:
                if self._deps.clock() - last_maintenance >= 2.0:
                    last_maintenance = self._deps.clock()
                    self._reaper.reap()
                    self._approvals.expire()
                while not self._s.stop.is_set() and self._runner.run_next():
                    pass
            except Exception as e:  # the worker must outlive a database outage  # noqa: BLE001 - error boundary
                log.warning("worker: %s", str(e).splitlines()[0] if str(e) else type(e).__name__)
            self._s.wake.wait(timeout=1.0)
            self._s.wake.clear()
