"""Request guard: replayed signatures (placeholder).

Revision ID: 0003_request_guard
Revises: 0002_audit_hardening
Create Date: 2026-12-02
"""
from alembic import op  # noqa: F401

revision = "0003_request_guard"
down_revision = "0002_audit_hardening"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
