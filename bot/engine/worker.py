"""The worker: claims queued steps and runs each exactly once; the reaper of dead workers' steps."""

from __future__ import annotations

import concurrent.futures
import logging
import threading

import psycopg
from psycopg.rows import dict_row

from bot.engine.core import ROLLBACK, EngineCore
from bot.slack import blocks
from bot.store import repo
from runbook.model import Step
from runbook.steps.base import REGISTRY, StepContext, StepFailed, StepNotAvailable

log = logging.getLogger(__name__)


class Worker(EngineCore):
    """See the module docstring."""

    def reap_interrupted(self) -> int:
        """Running steps whose worker is gone become interrupted; the channel is told."""
        found: list[int] = []
        with self.db.connection() as conn:
            conn.autocommit = True
            try:
                for exe in repo.running_executions(conn):
                    if not repo.try_lock_execution(conn, execution_id=exe["id"]):
                        continue  # its worker is alive and holds the lock
                    try:
                        with conn.transaction():
                            moved = repo.transition(
                                conn, execution_id=exe["id"], from_states=("running",),
                                to="interrupted", now=self.deps.now(),
                                error="outcome unknown: the bot stopped while this step ran")
                            if moved:
                                self._audit(conn, actor="golive", channel=exe["channel"],
                                            action="step.interrupted", outcome="interrupted",
                                            run_id=exe["run_id"],
                                            detail={"step": exe["step_id"],
                                                    "worker": exe["claimed_by"]})
                                found.append(exe["id"])
                    finally:
                        repo.unlock_execution(conn, execution_id=exe["id"])
            finally:
                conn.autocommit = False
        for exe_id in found:
            self.refresh_card(exe_id)
            self.announce_interrupted(exe_id)
        return len(found)

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
        conn = psycopg.connect(self.db.url, row_factory=dict_row, connect_timeout=5)
        try:
            cancelled: list[int] = []
            claimed = self._claim(conn, cancelled)
            for exe_id in cancelled:  # their cards must not keep saying "queued"
                self.refresh_card(exe_id)
            if claimed is None:
                return False
            self._execute(conn, *claimed)
            return True
        finally:
            conn.close()  # also releases the advisory lock if anything above failed

    def _claim(self, conn: psycopg.Connection, cancelled: list[int]
               ) -> tuple[dict, dict, Step] | None:
        """Claim one runnable step; queued steps that can never run are cancelled on the way
        (their ids land in ``cancelled``)."""
        with conn.transaction():
            for exe in repo.queued_candidates(conn):
                run = repo.get_run(conn, run_id=exe["run_id"])
                if run is None:
                    continue
                step = self.runbook.step(exe["step_id"])
                states = self.states(conn, exe["run_id"])
                unmet = self.runbook.unmet_requirements(step.id, states)
                if unmet and not exe["override_reason"]:
                    if any(states.get(u) in ("failed", "interrupted", "cancelled") for u in unmet):
                        repo.transition(conn, execution_id=exe["id"], from_states=("queued",),
                                        to="cancelled", now=self.deps.now(),
                                        error=f"cancelled: {', '.join(unmet)} did not succeed")
                        cancelled.append(exe["id"])
                    continue
                if exe["approval_id"] and step.phase != ROLLBACK:
                    a = repo.get_approval(conn, approval_id=exe["approval_id"])
                    if a is None or a["status"] != "approved" or \
                            self._current_hash(conn, a) != a["params_hash"]:
                        repo.transition(conn, execution_id=exe["id"], from_states=("queued",),
                                        to="cancelled", now=self.deps.now(),
                                        error="approval void: the parameters or preflight "
                                              "changed after approval")
                        self._audit(conn, actor="golive", channel=exe["channel"],
                                    action="approval.void", outcome="void", run_id=exe["run_id"],
                                    detail={"step": step.id, "approval": exe["approval_id"]})
                        cancelled.append(exe["id"])
                        continue
                try:
                    with conn.transaction():
                        conn.execute("SELECT pg_advisory_lock(%s, %s)",
                                     (repo.LOCK_NS, exe["id"]))
                        moved = repo.transition(conn, execution_id=exe["id"],
                                                from_states=("queued",), to="running",
                                                now=self.deps.now(),
                                                claimed_by=self.deps.worker_id)
                except psycopg.errors.UniqueViolation:
                    conn.execute("SELECT pg_advisory_unlock(%s, %s)", (repo.LOCK_NS, exe["id"]))
                    continue  # another step of this run is running
                if moved is None:
                    continue
                self._audit(conn, actor="golive", channel=exe["channel"], action="step.started",
                            outcome="running", run_id=exe["run_id"],
                            detail={"step": step.id, "attempt": exe["attempt"],
                                    "worker": self.deps.worker_id})
                return moved, run, step
        return None

    def _execute(self, conn: psycopg.Connection, exe: dict, run: dict, step: Step) -> None:
        lines: list[str] = []
        started = self.deps.clock()
        # "running" shows only if the step is still running a second from now: a quick step
        # goes straight to its result, and the card's final update is never held back.
        card_ts = self.refresh_card(exe["id"], delay=1.0)
        log_ts: list[str] = []  # the live progress log: one thread reply, updated in place

        def progress(text: str) -> None:
            lines.append(str(self.deps.mask(text))[:500])
            if not card_ts:
                return
            body_text, body = blocks.progress_log(step, lines)
            if not log_ts:
                ts = self.deps.poster.post(exe["channel"], text=body_text, blocks=body,
                                           thread_ts=card_ts)
                if ts:
                    log_ts.append(ts)
                return
            self.deps.poster.update(exe["channel"], log_ts[0], text=body_text, blocks=body)

        params = {**dict(step.params), **dict(exe["params"])}
        ctx = StepContext(run_id=run["id"], step_id=step.id, params=params,
                          facts=dict(run["facts"]), target=self.deps.target, progress=progress,
                          deadline=self.deps.clock() + step.timeout_s, clock=self.deps.clock,
                          sleep=self.deps.sleep, secrets=self.deps.secrets)
        outcome, summary, detail, error, facts = "succeeded", "", "", None, {}
        pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"step-{step.id}")
        future = pool.submit(REGISTRY[step.kind].run, ctx)
        try:
            result = future.result(timeout=step.timeout_s + self.deps.step_grace)
            summary, detail, facts = result.summary, result.detail, dict(result.facts)
        except concurrent.futures.TimeoutError:
            outcome, error = "interrupted", (f"timed out after {step.timeout_s}s; outcome "
                                             "unknown, the step may still be running")
        except StepNotAvailable as e:
            outcome, error = "failed", e.message
        except StepFailed as e:
            outcome, error, facts = "failed", e.message, dict(e.facts)
        except Exception as e:  # a bug in a step: record it, never crash the worker
            log.exception("step %s crashed", step.id)
            outcome, error = "failed", f"unexpected error: {type(e).__name__}: {e}"
        finally:
            pool.shutdown(wait=False)
        mask = self.deps.mask
        duration = self.deps.clock() - started
        with conn.transaction():
            repo.transition(conn, execution_id=exe["id"], from_states=("running",), to=outcome,
                            now=self.deps.now(), summary=mask(summary) or None,
                            detail=mask(detail) or None, error=mask(error) if error else None,
                            progress=mask("\n".join(lines[-50:])))
            repo.merge_run_facts(conn, run_id=run["id"], facts=mask(facts))
            self._audit(conn, actor="golive", channel=exe["channel"], action="step.finished",
                        outcome=outcome, run_id=run["id"],
                        detail={"step": step.id, "attempt": exe["attempt"],
                                "seconds": round(duration, 3), "summary": summary,
                                "error": error})
            if outcome != "succeeded":
                for other in repo.latest_executions(conn, run_id=run["id"]).values():
                    if other["state"] == "queued" and step.id in self.runbook.step(
                            other["step_id"]).requires and not other["override_reason"]:
                        repo.transition(conn, execution_id=other["id"], from_states=("queued",),
                                        to="cancelled", now=self.deps.now(),
                                        error=f"cancelled: {step.id} {outcome}")
        conn.execute("SELECT pg_advisory_unlock(%s, %s)", (repo.LOCK_NS, exe["id"]))
        conn.commit()
        self.refresh_card(exe["id"], progress=lines)
        if detail and len(detail) > 2800:
            self.deps.poster.upload(exe["channel"], filename=f"{step.id}-output.txt",
                                    content=mask(detail), title=f"{step.title}: output",
                                    thread_ts=exe["message_ts"])
        if outcome == "interrupted":
            self.announce_interrupted(exe["id"])
        if outcome == "succeeded":
            view = self.view(run_id=run["id"])
            # The summary closes the cutover (the same "done" that status shows) or a rollback.
            rollback_done = step.phase == ROLLBACK and step == self.runbook.rollback[-1]
            if view and (rollback_done or (step.phase != ROLLBACK and view.cutover_done()
                                           and not view.run.get("summary_ts"))):
                self.post_summary(view)

    # ------------------------------------------------------------------ rendering
