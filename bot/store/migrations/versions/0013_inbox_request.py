"""The inbox keeps the request the door parsed: a slash command is parsed once, at the door,
and its typed form (``bot.ingress.CommandRequest``) travels with the row to the work side.

Revision ID: 0013_inbox_request
Revises: 0012_inbox_unclaimed
Create Date: 2026-12-07
"""
from alembic import op

revision = "0013_inbox_request"
down_revision = "0012_inbox_unclaimed"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE inbox ADD COLUMN request jsonb")


def downgrade() -> None:
    op.execute("ALTER TABLE inbox DROP COLUMN request")
