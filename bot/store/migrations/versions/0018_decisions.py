"""Guided failure (issue 21): one decision per failed or interrupted step attempt.

A row appears when an operator first acts on a step's decision card (``Take it``): ``owner``
is who owns the decision (the first to click; a second click by someone else is refused),
``held_by``/``held_at`` the last Hold, ``skip_reason``/``skip_requested_by`` a Skip the owner
asked for and that waits for a second person, ``chosen``/``chosen_by``/``chosen_at`` the
decision once taken (retry, skip, rollback, abort: set once, under the row lock, so a double
click, two clickers or a redelivered envelope never take two decisions). The card's deadline
is computed from the attempt's ``finished_at`` and the config, not stored. The runtime role
gets SELECT, INSERT, UPDATE through the default privileges 0002 set for new tables.

Revision ID: 0018_decisions
Revises: 0017_step_plans
Create Date: 2026-12-08
"""
from alembic import op

revision = "0018_decisions"
down_revision = "0017_step_plans"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE decisions (
        execution_id       bigint PRIMARY KEY REFERENCES step_executions(id),
        run_id             bigint NOT NULL REFERENCES runs(id),
        step_id            text NOT NULL,
        owner              text NOT NULL,
        taken_at           timestamptz NOT NULL,
        held_by            text,
        held_at            timestamptz,
        skip_reason        text,
        skip_requested_by  text,
        skip_requested_at  timestamptz,
        chosen             text CHECK (chosen IN ('retry', 'skip', 'rollback', 'abort')),
        chosen_by          text,
        chosen_at          timestamptz,
        note               text
    );
    CREATE INDEX decisions_run ON decisions (run_id);
    """)


def downgrade() -> None:
    op.execute("DROP TABLE decisions")
