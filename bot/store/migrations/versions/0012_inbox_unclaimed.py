"""Index the inbox's unclaimed requests: the work process's handlers claim them oldest first
(bot/inbox.py ``Inbox.claim``) on every request the door records.

Revision ID: 0012_inbox_unclaimed
Revises: 0011_drop_message_columns
Create Date: 2026-12-02
"""
from alembic import op

revision = "0012_inbox_unclaimed"
down_revision = "0011_drop_message_columns"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX inbox_unclaimed ON inbox (id) WHERE state = 'new' AND owner = ''")


def downgrade() -> None:
    op.execute("DROP INDEX inbox_unclaimed")
