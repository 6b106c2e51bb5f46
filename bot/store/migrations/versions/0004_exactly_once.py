"""Exactly-once constraints: one active execution per step (so one active rollback per run),
and the worker's heartbeat that the reaper checks besides the advisory lock.

Revision ID: 0004_exactly_once
Revises: 0003_request_guard
Create Date: 2026-12-02
"""
from alembic import op

revision = "0004_exactly_once"
down_revision = "0003_request_guard"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    -- At most one live attempt of a step in a run. A rollback is the rollback plan's steps
    -- queued together, so a second active rollback of a run collides here on its first step
    -- that is still queued or running; so does a second request or a retry racing the first.
    CREATE UNIQUE INDEX step_executions_one_active ON step_executions (run_id, step_id)
        WHERE state IN ('awaiting_approval', 'queued', 'running');
    -- Set by the worker when it claims a step and renewed while the step runs: the reaper
    -- takes a step whose lock is free for dead only once this is stale (a dropped step
    -- connection loses the lock, not the heartbeat).
    ALTER TABLE step_executions ADD COLUMN heartbeat_at timestamptz;
    """)


def downgrade() -> None:
    op.execute("""
    ALTER TABLE step_executions DROP COLUMN heartbeat_at;
    DROP INDEX step_executions_one_active;
    """)
