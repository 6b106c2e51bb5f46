"""Policy: operators, mark-done approvals, run outcomes (placeholder).

Revision ID: 0005_policy
Revises: 0004_exactly_once
Create Date: 2026-12-02
"""
from alembic import op  # noqa: F401

revision = "0005_policy"
down_revision = "0004_exactly_once"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
