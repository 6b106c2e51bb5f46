"""Preflight results: one row per check per preflight execution, tied to the RC commit SHA.

The gate reads the newest row of every check for the run (and its SHA); single-check re-runs
add rows, so history is never overwritten. See bot/engine/preflight.py.

Revision ID: 0007_preflight
Revises: 0006_outbox
Create Date: 2026-12-10
"""
from alembic import op

revision = "0007_preflight"
down_revision = "0006_outbox"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE preflight_results (
        id            bigserial PRIMARY KEY,
        run_id        bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        execution_id  bigint NOT NULL REFERENCES step_executions (id) ON DELETE CASCADE,
        rc_sha        text,
        check_name    text NOT NULL,
        status        text NOT NULL CHECK (status IN ('ok', 'warn', 'fail', 'unknown')),
        finding       text NOT NULL,
        details       jsonb NOT NULL DEFAULT '[]',
        files         jsonb NOT NULL DEFAULT '{}',   -- file name -> text (e.g. migration SQL)
        facts         jsonb NOT NULL DEFAULT '{}',
        duration_s    double precision NOT NULL DEFAULT 0,
        finished_at   timestamptz NOT NULL,
        UNIQUE (execution_id, check_name)
    );
    CREATE INDEX preflight_results_latest ON preflight_results (run_id, check_name, id DESC);
    """)


def downgrade() -> None:
    op.execute("DROP TABLE preflight_results")
