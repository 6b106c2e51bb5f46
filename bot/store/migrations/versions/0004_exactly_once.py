"""Exactly-once constraints (placeholder).

Revision ID: 0004_exactly_once
Revises: 0003_request_guard
Create Date: 2026-12-02
"""
from alembic import op  # noqa: F401

revision = "0004_exactly_once"
down_revision = "0003_request_guard"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
