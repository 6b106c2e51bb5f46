"""The post-cutover watches' state, kept in the database so a new leader continues them.

``watch_control``: whether a run's watches should run (started when traffic opens or by
``/golive watch start``, stopped by ``/golive watch stop``). ``watch_states``: each watch's
analysis state (the history its message shows) and how many times it measured.
``watch_events``: what each watch said in its thread (one row per reply, a burst of changes
coalesced into the reply not yet posted). ``watch_alerts``: rollback triggers and declared
security incidents, with their evidence. See bot/watches/.

Revision ID: 0008_watches
Revises: 0007_preflight
Create Date: 2026-12-05
"""
from alembic import op

revision = "0008_watches"
down_revision = "0007_preflight"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE watch_control (
        run_id      bigint PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
        desired     text NOT NULL CHECK (desired IN ('running', 'stopped')),
        changed_by  text NOT NULL,
        changed_at  timestamptz NOT NULL
    );
    CREATE TABLE watch_states (
        run_id      bigint NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        name        text NOT NULL,
        state       jsonb NOT NULL,
        ticks       bigint NOT NULL DEFAULT 0,
        measured_by text,
        updated_at  timestamptz NOT NULL,
        PRIMARY KEY (run_id, name)
    );
    CREATE TABLE watch_events (
        id          bigserial PRIMARY KEY,
        run_id      bigint NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        name        text NOT NULL,
        kind        text NOT NULL,
        lines       jsonb NOT NULL,       -- one line per change; a burst appends to one reply
        at          timestamptz NOT NULL
    );
    CREATE INDEX watch_events_run ON watch_events (run_id, name, id);
    CREATE TABLE watch_alerts (
        id          bigserial PRIMARY KEY,
        run_id      bigint REFERENCES runs(id) ON DELETE CASCADE,
        kind        text NOT NULL,        -- rollback_trigger | security_incident
        watch       text,
        text        text NOT NULL,
        evidence    jsonb NOT NULL,
        raised_by   text NOT NULL,
        at          timestamptz NOT NULL
    );
    """)


def downgrade() -> None:
    op.execute("DROP TABLE watch_alerts, watch_events, watch_states, watch_control")
