"""The outbox: every Slack message or update the bot means to send, as a durable row.

One row per logical message (``key``, e.g. ``card:exe:17``), written by the transaction whose
state change causes it; the sender delivers the newest render of each row and records the
message's ``ts``. See bot/outbox/.

Revision ID: 0006_outbox
Revises: 0005_policy
Create Date: 2026-12-03
"""
from alembic import op

revision = "0006_outbox"
down_revision = "0005_policy"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE outbox (
        id             bigserial PRIMARY KEY,
        key            text NOT NULL UNIQUE,   -- idempotency key: one row per logical message
        channel        text NOT NULL,
        thread_key     text,                   -- a thread reply: its parent row's key
        data           jsonb,                  -- optional snapshot the renderer may use
        version        bigint NOT NULL DEFAULT 1,   -- bumped by every touch
        sent_version   bigint NOT NULL DEFAULT 0,   -- the version the last delivery rendered
        due_at         timestamptz,            -- pending content goes out then; NULL: nothing
        not_before     timestamptz,            -- retry gate (backoff, Retry-After)
        lease_until    timestamptz,            -- a sender claimed it until then
        leased_by      text,
        attempts       int NOT NULL DEFAULT 0, -- claims since the last delivery
        ts             text,                   -- the message's ts once posted (upload: file id)
        last_update_at timestamptz,            -- last chat.update (a post is not an update)
        last_error     text,
        created_at     timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX outbox_due ON outbox (due_at) WHERE due_at IS NOT NULL;
    CREATE INDEX outbox_leased ON outbox (leased_by) WHERE lease_until IS NOT NULL;
    """)


def downgrade() -> None:
    op.execute("DROP TABLE outbox")
