"""Break-glass: an approval row of kind ``break_glass`` records a one-person rollback.

The row is the record the timeline names ("break-glass") and the audit row points to; it is
decided ``approved`` by its requester in the transaction that queues the rollback.

Revision ID: 0010_break_glass
Revises: 0009_canary
Create Date: 2026-12-02
"""
from alembic import op

revision = "0010_break_glass"
# Chained after the highest revision present when it was written; the lead re-links if needed.
down_revision = "0009_canary"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    ALTER TABLE approvals DROP CONSTRAINT approvals_kind_check;
    ALTER TABLE approvals ADD CONSTRAINT approvals_kind_check
        CHECK (kind IN ('step', 'rollback', 'mark_done', 'break_glass'));
    """)


def downgrade() -> None:
    op.execute("""
    UPDATE approvals SET kind = 'rollback' WHERE kind = 'break_glass';
    ALTER TABLE approvals DROP CONSTRAINT approvals_kind_check;
    ALTER TABLE approvals ADD CONSTRAINT approvals_kind_check
        CHECK (kind IN ('step', 'rollback', 'mark_done'));
    """)
