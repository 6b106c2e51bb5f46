"""Drop the message-location columns nothing writes any more: the outbox owns where a message
landed (its ``ts``), so ``step_executions.message_ts``, ``approvals.message_ts`` and
``runs.summary_ts`` are dead. The downgrade adds them back, empty (as they were in practice).

Revision ID: 0011_drop_message_columns
Revises: 0010_break_glass
Create Date: 2026-12-02
"""
from alembic import op

revision = "0011_drop_message_columns"
# Chained after the highest revision present when it was written; the lead re-links if needed.
down_revision = "0010_break_glass"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    ALTER TABLE step_executions DROP COLUMN IF EXISTS message_ts;
    ALTER TABLE approvals DROP COLUMN IF EXISTS message_ts;
    ALTER TABLE runs DROP COLUMN IF EXISTS summary_ts;
    """)


def downgrade() -> None:
    op.execute("""
    ALTER TABLE step_executions ADD COLUMN IF NOT EXISTS message_ts text;
    ALTER TABLE approvals ADD COLUMN IF NOT EXISTS message_ts text;
    ALTER TABLE runs ADD COLUMN IF NOT EXISTS summary_ts text;
    """)
