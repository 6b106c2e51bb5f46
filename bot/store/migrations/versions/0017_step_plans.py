"""Approvals bound to the plan (issue 20, item 2): the step's part of the plan an approval
request showed and bound, one row per gated step request.

``plan`` is ``runbook.plan.model.plan_to_dict`` of a plan holding that step alone (values
already masked; ``runbook.plan.sources.compute_step``), ``digest`` its ``step_digest``, which
the approval's ``params`` (and so its ``params_hash``) carries under ``plan``. The claim
recomputes the step's part and voids the approval when the digest moved, naming what changed
from this row. The runtime role gets SELECT, INSERT, UPDATE through the default privileges
0002 set for the tables migrations create.

Revision ID: 0017_step_plans
Revises: 0016_plans
Create Date: 2026-12-08
"""
from alembic import op

revision = "0017_step_plans"
down_revision = "0016_plans"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE step_plans (
        approval_id  bigint PRIMARY KEY REFERENCES approvals(id),
        run_id       bigint NOT NULL REFERENCES runs(id),
        step_id      text NOT NULL,
        digest       text NOT NULL,
        plan         jsonb NOT NULL,
        created_at   timestamptz NOT NULL
    );
    """)


def downgrade() -> None:
    op.execute("DROP TABLE step_plans")
