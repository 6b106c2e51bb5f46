"""The reaper of dead workers' steps, and what a step that failed or was interrupted holds.

Gone means both: nobody holds the step's advisory lock, and its heartbeat is older than
``deps.lease_s`` by the database's clock (``Reaper.reap``). When a step fails or is
interrupted, every queued step of its run is cancelled in the same transaction
(``hold_run``): nothing queued starts on its own until a person asks again.
"""

from __future__ import annotations

import psycopg

from bot.engine import executions
from bot.engine.core import ROLLBACK, Shared
from bot.engine.rollback import RollbackPlanner
from bot.store import repo


def hold_run(shared: Shared, conn: psycopg.Connection, exe: dict, outcome: str) -> list[int]:
    """Cancel every queued step of ``exe``'s run: a person decides again (override or not)."""
    rows = executions.hold_queued(conn, run_id=exe["run_id"], now=shared.now(),
                                  error=f"cancelled: {exe['step_id']} {outcome}; request it "
                                        "again if it should still run")
    for row in rows:
        shared.notices.step_changed(conn, row)
    if rows:
        shared.audit.record(conn, actor="golive", channel=exe["channel"], action="step.held",
                            outcome="cancelled", run_id=exe["run_id"],
                            detail={"after": exe["step_id"], "outcome": outcome,
                                    "steps": [r["step_id"] for r in rows]})
    return [r["id"] for r in rows]


class Reaper:
    """See the module docstring."""

    def __init__(self, shared: Shared, *, planner: RollbackPlanner):
        self._s = shared
        self._db = shared.db
        self._deps = shared.deps
        self._runbook = shared.runbook
        self._planner = planner

    def reap(self) -> int:
        """Running steps whose worker is gone become interrupted; the channel is told.

        Gone means both: nobody holds the step's advisory lock, and its heartbeat is older than
        ``deps.lease_s`` by the database's clock. A worker whose step connection dropped (a
        network blip, a proxy restart) loses the lock but keeps renewing the heartbeat over
        fresh connections, so its live step is left alone. A worker that cannot renew for
        ``_fence_s`` has the step's process group killed by the step process itself, before
        the lease runs out, so when a reaper acts nothing of the step runs any more.
        """
        found: list[int] = []
        with self._db.connection() as conn:
            conn.autocommit = True
            try:
                for exe in repo.running_executions(conn):
                    if not repo.try_lock_execution(conn, execution_id=exe["id"]):
                        continue  # its worker is alive and holds the lock
                    try:
                        with conn.transaction():
                            moved = executions.interrupt_if_stale(
                                conn, execution_id=exe["id"], lease_s=self._deps.lease_s,
                                now=self._deps.now(),
                                error="outcome unknown: the bot stopped while this step ran")
                            if moved:
                                self._s.audit.record(conn, actor="golive", channel=exe["channel"],
                                                     action="step.interrupted",
                                                     outcome="interrupted",
                                                     run_id=exe["run_id"],
                                                     detail={"step": exe["step_id"],
                                                             "worker": exe["claimed_by"]})
                                self._s.notices.interrupted(conn, moved)
                                hold_run(self._s, conn, moved, "interrupted")
                                if self._runbook.step(moved["step_id"]).phase == ROLLBACK:
                                    self._planner.ended(conn, repo.get_run(
                                        conn, run_id=moved["run_id"]))
                                found.append(exe["id"])
                    finally:
                        repo.unlock_execution(conn, execution_id=exe["id"])
            finally:
                conn.autocommit = False
        return len(found)
