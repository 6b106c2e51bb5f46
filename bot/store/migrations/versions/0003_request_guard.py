"""The inbox: every verified Slack request, written before it is acked.

Revision ID: 0003_request_guard
Revises: 0002_audit_hardening
Create Date: 2026-12-02
"""
from alembic import op

revision = "0003_request_guard"
down_revision = "0002_audit_hardening"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    -- A captured request stays correctly signed for Slack's 5-minute window. Its key (sha256
    -- of timestamp and signature) is unique, so a second delivery collides here whichever
    -- replica receives it. The raw body is kept (bytea: a NUL in a user's text cannot be
    -- stored in jsonb) so a request acked just before a crash can still be handled (by any
    -- replica, once: see bot/inbox.py).
    CREATE TABLE inbox (
        id           bigserial PRIMARY KEY,
        sig_key      text NOT NULL UNIQUE,
        received_at  timestamptz NOT NULL DEFAULT now(),
        kind         text NOT NULL,
        channel      text,
        body         bytea NOT NULL,
        -- the process that acked it; it holds an advisory lock on this key while it lives
        owner        text NOT NULL DEFAULT '',
        state        text NOT NULL DEFAULT 'new' CHECK (state IN ('new', 'done', 'dropped')),
        -- set when another process re-dispatched it: a request is recovered at most once
        recovered_at timestamptz,
        handled_at   timestamptz
    );
    CREATE INDEX inbox_received_at ON inbox (received_at);
    CREATE INDEX inbox_new ON inbox (channel, id) WHERE state = 'new';
    """)


def downgrade() -> None:
    op.execute("DROP TABLE inbox")
