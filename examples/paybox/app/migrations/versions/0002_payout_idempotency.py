"""payout idempotency key (arrives with paybox v2)

Revision ID: 0002_payout_idempotency
Revises: 0001_ledger
"""
import sqlalchemy as sa
from alembic import op

revision = "0002_payout_idempotency"
down_revision = "0001_ledger"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("payouts", sa.Column("idempotency_key", sa.Text(), nullable=True))
    op.create_index("payouts_idempotency_key_uq", "payouts", ["idempotency_key"], unique=True)


def downgrade():
    op.drop_index("payouts_idempotency_key_uq", table_name="payouts")
    op.drop_column("payouts", "idempotency_key")
