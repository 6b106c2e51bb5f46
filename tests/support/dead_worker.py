"""What a worker that died mid-step leaves behind, for the tests of interrupted steps."""

from __future__ import annotations

import psycopg


def leave_running(db_url: str, step_id: str, *, override_reason: str | None = None) -> int:
    """A running row of ``step_id`` in the active run as a claim wrote it (``claimed_by`` a
    worker id, ``started_at``, one heartbeat) whose worker then died: the heartbeat is an hour
    old and nobody holds the row's advisory lock. Returns the execution's id."""
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            "INSERT INTO step_executions (run_id, step_id, attempt, state, params, requested_by,"
            " channel, started_at, heartbeat_at, claimed_by, override_reason)"
            " SELECT id, %s, 1, 'running', '{}', 'U_ALICE', 'C_CUTOVER', now(),"
            " now() - interval '1 hour', 'dead-host:1', %s FROM runs WHERE status = 'active'"
            " RETURNING id", (step_id, override_reason)).fetchone()[0]
