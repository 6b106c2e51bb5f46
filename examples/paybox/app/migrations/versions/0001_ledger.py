"""ledger: accounts, transactions, payouts (arrives with paybox v1)

Revision ID: 0001_ledger
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001_ledger"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "accounts",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("available_cents", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("held_cents", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.text("now()")),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.text("now()")),
    )
    op.create_table(
        "payouts",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.Text(), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.text("now()")),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.text("now()")),
        sa.CheckConstraint("status IN ('held', 'settled', 'failed')", name="payouts_status_ck"),
    )
    op.create_index("payouts_status_idx", "payouts", ["status"])
    op.create_table(
        "transactions",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        # no FK on purpose: the ledger check reports orphans instead of the DB refusing them
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("reference", sa.Text(), nullable=True),
        sa.Column("payout_id", sa.BigInteger(), sa.ForeignKey("payouts.id"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.text("now()")),
    )
    op.create_index("transactions_account_idx", "transactions", ["account_id"])
    op.create_index("transactions_deposit_reference_uq", "transactions", ["reference"],
                    unique=True, postgresql_where=sa.text("kind = 'deposit'"))


def downgrade():
    op.drop_table("transactions")
    op.drop_table("payouts")
    op.drop_table("accounts")
