"""Audit hardening (placeholder, filled in by the audit work).

Revision ID: 0002_audit_hardening
Revises: 0001_core
Create Date: 2026-12-02
"""
from alembic import op  # noqa: F401

revision = "0002_audit_hardening"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
