"""The night's plans (issue 20): one row per `/golive plan` (or `golive plan`, or a rehearsal's
plan), the plan as JSON, its digest and the Markdown an auditor reads.

``plan`` is ``runbook.plan.model.plan_to_dict`` (values already masked), ``digest`` the
canonical hash of its content (``plan_digest``), ``markdown`` the file the channel got. The
audit row ``plan`` of the same transaction carries the digest and the file's sha256. The
runtime role gets SELECT, INSERT, UPDATE through the default privileges 0002 set for the
tables migrations create.

Revision ID: 0016_plans
Revises: 0015_autopilot
Create Date: 2026-12-08
"""
from alembic import op

revision = "0016_plans"
down_revision = "0015_autopilot"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE plans (
        id           bigserial PRIMARY KEY,
        run_id       bigint REFERENCES runs(id),
        rc_tag       text,
        channel      text,
        requested_by text NOT NULL,
        digest       text NOT NULL,
        plan         jsonb NOT NULL,
        markdown     text NOT NULL,
        created_at   timestamptz NOT NULL
    );
    CREATE INDEX plans_run ON plans (run_id, id);
    """)


def downgrade() -> None:
    op.execute("DROP TABLE plans")
