"""journal: accounts and double-entry entries (ledgerline v1)

Revision ID: ll_0001_journal
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "ll_0001_journal"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "ll_accounts",
        sa.Column("code", sa.Text(), primary_key=True),
        sa.Column("balance_minor", sa.BigInteger(), nullable=False, server_default="0"),
    )
    op.create_table(
        "ll_entries",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("debit", sa.Text(), sa.ForeignKey("ll_accounts.code"), nullable=False),
        sa.Column("credit", sa.Text(), sa.ForeignKey("ll_accounts.code"), nullable=False),
        sa.Column("minor_units", sa.BigInteger(), nullable=False),
        sa.Column("booked_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.text("now()")),
        sa.CheckConstraint("minor_units > 0", name="ll_entries_positive"),
    )


def downgrade():
    op.drop_table("ll_entries")
    op.drop_table("ll_accounts")
