"""entry reference: an optional external reference per entry (ledgerline v2)

Revision ID: ll_0002_entry_reference
Revises: ll_0001_journal
"""
import sqlalchemy as sa
from alembic import op

revision = "ll_0002_entry_reference"
down_revision = "ll_0001_journal"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("ll_entries", sa.Column("reference", sa.Text(), nullable=True))


def downgrade():
    op.drop_column("ll_entries", "reference")
