"""Core state: cutover runs, step executions, approvals and votes, the hash-chained audit log.

Revision ID: 0001_core
Revises:
Create Date: 2026-11-28
"""
from alembic import op

revision = "0001_core"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE runs (
        id          bigserial PRIMARY KEY,
        channel     text NOT NULL,
        rc_tag      text,
        rc_sha      text,
        started_by  text NOT NULL,
        started_at  timestamptz NOT NULL DEFAULT now(),
        ended_at    timestamptz,
        status      text NOT NULL DEFAULT 'active'
                    CHECK (status IN ('active', 'completed', 'aborted', 'rolled_back')),
        facts       jsonb NOT NULL DEFAULT '{}'::jsonb,
        summary_ts  text
    );
    -- One cutover at a time: a second `start` while one is active is refused by the database.
    CREATE UNIQUE INDEX runs_one_active ON runs ((true)) WHERE status = 'active';

    CREATE TABLE approvals (
        id           bigserial PRIMARY KEY,
        run_id       bigint NOT NULL REFERENCES runs(id),
        step_id      text NOT NULL,
        action       text NOT NULL,
        params       jsonb NOT NULL,
        params_hash  text NOT NULL,
        requester    text NOT NULL,
        required     int NOT NULL CHECK (required >= 1),
        groups       text[] NOT NULL DEFAULT '{}',
        reason       text,
        status       text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'approved', 'rejected', 'cancelled',
                                       'expired', 'void')),
        created_at   timestamptz NOT NULL DEFAULT now(),
        expires_at   timestamptz NOT NULL,
        decided_at   timestamptz,
        decided_by   text,
        decision_note text,
        channel      text NOT NULL,
        message_ts   text
    );
    -- At most one open request per step: double submits collide here.
    CREATE UNIQUE INDEX approvals_one_pending ON approvals (run_id, step_id)
        WHERE status = 'pending';

    CREATE TABLE approval_votes (
        approval_id bigint NOT NULL REFERENCES approvals(id),
        user_id     text NOT NULL,
        vote        text NOT NULL CHECK (vote IN ('approve', 'reject')),
        at          timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (approval_id, user_id)
    );

    CREATE TABLE step_executions (
        id           bigserial PRIMARY KEY,
        run_id       bigint NOT NULL REFERENCES runs(id),
        step_id      text NOT NULL,
        attempt      int NOT NULL,
        state        text NOT NULL CHECK (state IN ('pending', 'awaiting_approval', 'queued',
                         'running', 'succeeded', 'failed', 'skipped', 'interrupted',
                         'cancelled')),
        params       jsonb NOT NULL DEFAULT '{}'::jsonb,
        requested_by text NOT NULL,
        approval_id  bigint REFERENCES approvals(id),
        override_reason text,
        channel      text NOT NULL,
        message_ts   text,
        progress     text NOT NULL DEFAULT '',
        summary      text,
        detail       text,
        error        text,
        created_at   timestamptz NOT NULL DEFAULT now(),
        queued_at    timestamptz,
        started_at   timestamptz,
        finished_at  timestamptz,
        claimed_by   text,
        UNIQUE (run_id, step_id, attempt)
    );
    -- The engine runs at most one step of a run at a time, whatever the number of workers.
    CREATE UNIQUE INDEX step_executions_one_running ON step_executions (run_id)
        WHERE state = 'running';
    CREATE INDEX step_executions_queued ON step_executions (queued_at) WHERE state = 'queued';

    CREATE TABLE audit_log (
        id        bigint PRIMARY KEY,
        at        timestamptz NOT NULL,
        run_id    bigint,
        actor     text NOT NULL,
        channel   text,
        action    text NOT NULL,
        detail    jsonb NOT NULL DEFAULT '{}'::jsonb,
        outcome   text NOT NULL,
        prev_hash text NOT NULL,
        hash      text NOT NULL UNIQUE
    );
    CREATE INDEX audit_log_run ON audit_log (run_id, id);
    -- The chain head: appends lock this row, so ids are gapless and prev_hash is exact.
    CREATE TABLE audit_head (
        only_row  boolean PRIMARY KEY DEFAULT true CHECK (only_row),
        last_id   bigint NOT NULL,
        last_hash text NOT NULL
    );
    INSERT INTO audit_head VALUES (true, 0, repeat('0', 64));

    CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP;
    END $$;
    CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
        FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
    """)


def downgrade() -> None:
    op.execute("""
    DROP TRIGGER audit_log_append_only ON audit_log;
    DROP FUNCTION audit_log_append_only();
    DROP TABLE audit_head;
    DROP TABLE audit_log;
    DROP TABLE step_executions;
    DROP TABLE approval_votes;
    DROP TABLE approvals;
    DROP TABLE runs;
    """)
