"""The autopilot (issue 21): one row per run, whether `/golive go` drives it.

``on`` is whether the autopilot drives the run; ``started_by`` is on whose behalf it requests
steps (the operator who typed `/golive go`), ``started_at`` when (a request cancelled before it
is asked again, one cancelled after it stops it); ``paused_by``/``paused_at`` who stopped it
with `/golive pause`; ``waiting_for`` what status shows it waits for; ``last_reason`` why it
stopped by itself and what is next; ``stops`` counts its stop notices (each one is posted once,
keyed by it). The tick locks the row ``FOR UPDATE SKIP LOCKED``, so two replicas never drive
one run twice. The runtime role gets SELECT, INSERT, UPDATE through the default privileges
0002 set for the tables migrations create.

Revision ID: 0015_autopilot
Revises: 0014_door_role
Create Date: 2026-12-08
"""
from alembic import op

revision = "0015_autopilot"
down_revision = "0014_door_role"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE autopilot (
        run_id       bigint PRIMARY KEY REFERENCES runs(id),
        "on"         boolean NOT NULL,
        started_by   text NOT NULL,
        started_at   timestamptz NOT NULL,
        paused_by    text,
        paused_at    timestamptz,
        waiting_for  text,
        last_reason  text,
        stops        integer NOT NULL DEFAULT 0,
        updated_at   timestamptz NOT NULL
    );
    CREATE INDEX autopilot_on ON autopilot (run_id) WHERE "on";
    """)


def downgrade() -> None:
    op.execute("DROP TABLE autopilot")
