"""The canary (runbook 2C): one row per canary of a run, its state machine as jsonb.

``state`` is ``runbook.canary.machine.CanaryState.to_json()`` (``json``, not ``jsonb``: the
order of the configured roles is part of it, and jsonb would sort the keys), written in the transaction of
each change with its audit row and outbox rows, so a restarted bot resumes the thread where
it was (items left ``checking`` are verified again). ``report`` is the filled report, stored
with the run once the canary is decided. One open canary per run (partial unique index).

Revision ID: 0009_canary
Revises: 0008_watches
Create Date: 2026-12-05
"""
from alembic import op

revision = "0009_canary"
# Chained after the highest revision present when it was written; the lead re-links if needed.
down_revision = "0008_watches"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE canaries (
        id          bigserial PRIMARY KEY,
        run_id      bigint NOT NULL REFERENCES runs(id),
        channel     text NOT NULL,
        opened_by   text NOT NULL,
        state       json NOT NULL,
        outcome     text NOT NULL DEFAULT 'open' CHECK (outcome IN ('open', 'GO', 'NO-GO')),
        report      text,
        created_at  timestamptz NOT NULL,
        updated_at  timestamptz NOT NULL,
        decided_at  timestamptz
    );
    CREATE UNIQUE INDEX canaries_one_open ON canaries (run_id) WHERE outcome = 'open';
    CREATE INDEX canaries_run ON canaries (run_id);
    """)


def downgrade() -> None:
    op.execute("DROP TABLE canaries")
