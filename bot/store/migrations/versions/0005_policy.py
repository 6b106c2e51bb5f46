"""Policy: run outcomes (`incomplete`), approval kinds (`mark_done` requests).

Revision ID: 0005_policy
Revises: 0004_exactly_once
Create Date: 2026-12-02
"""
from alembic import op

revision = "0005_policy"
down_revision = "0004_exactly_once"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    -- A run closed before every runnable cutover step succeeded is `incomplete`, not `completed`.
    ALTER TABLE runs DROP CONSTRAINT runs_status_check;
    ALTER TABLE runs ADD CONSTRAINT runs_status_check
        CHECK (status IN ('active', 'completed', 'incomplete', 'aborted', 'rolled_back'));
    -- What an approval decides: a step request, the rollback plan, or treating an
    -- interrupted step as done (a two-person decision for gated steps).
    ALTER TABLE approvals ADD COLUMN kind text NOT NULL DEFAULT 'step'
        CHECK (kind IN ('step', 'rollback', 'mark_done'));
    UPDATE approvals SET kind = 'rollback' WHERE step_id = 'rollback';
    """)


def downgrade() -> None:
    op.execute("""
    ALTER TABLE approvals DROP COLUMN kind;
    UPDATE runs SET status = 'aborted' WHERE status = 'incomplete';
    ALTER TABLE runs DROP CONSTRAINT runs_status_check;
    ALTER TABLE runs ADD CONSTRAINT runs_status_check
        CHECK (status IN ('active', 'completed', 'aborted', 'rolled_back'));
    """)
