"""Audit hardening: TRUNCATE refused, and a runtime role that can only append to the audit log.

Migrations run as the owner role (GOLIVE_MIGRATIONS_DATABASE_URL); the bot runs as the runtime
role (DATABASE_URL), named by ``-x runtime_role=NAME`` or the ``golive.runtime_role`` option
(GOLIVE_RUNTIME_ROLE), default ``golive_runtime``. The role is created NOLOGIN when missing
(the operator gives it LOGIN and a password) and granted exactly what the bot's SQL does:

- runs, approvals, step_executions: SELECT, INSERT, UPDATE (rows are never deleted);
- approval_votes: SELECT, INSERT;
- audit_log: SELECT, INSERT only (no UPDATE, DELETE or TRUNCATE);
- audit_head: SELECT, UPDATE (appends lock and advance it);
- alembic_version: SELECT (start-up checks the schema); the id sequences: USAGE, SELECT.

Tables later migrations create get SELECT, INSERT, UPDATE, DELETE by default privileges; a
migration that needs less revokes it.

Revision ID: 0002_audit_hardening
Revises: 0001_core
Create Date: 2026-12-02
"""
import re

from alembic import context, op

revision = "0002_audit_hardening"
down_revision = "0001_core"
branch_labels = None
depends_on = None

DEFAULT_RUNTIME_ROLE = "golive_runtime"
_GRANTS = {
    "runs": "SELECT, INSERT, UPDATE",
    "approvals": "SELECT, INSERT, UPDATE",
    "step_executions": "SELECT, INSERT, UPDATE",
    "approval_votes": "SELECT, INSERT",
    "audit_log": "SELECT, INSERT",
    "audit_head": "SELECT, UPDATE",
    "alembic_version": "SELECT",
}
_SEQUENCES = ("runs_id_seq", "approvals_id_seq", "step_executions_id_seq")


def runtime_role() -> str:
    """The runtime role's name, from ``-x runtime_role=`` or the config; validated."""
    name = (context.get_x_argument(as_dictionary=True).get("runtime_role")
            or context.config.get_main_option("golive.runtime_role")
            or DEFAULT_RUNTIME_ROLE)
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise ValueError(f"runtime role {name!r}: use lowercase letters, digits and _")
    return name


def upgrade() -> None:
    role = runtime_role()
    op.execute("""
    CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
        FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
    """)
    grants = "\n".join(f'GRANT {what} ON {table} TO "{role}";' for table, what in _GRANTS.items())
    sequences = ", ".join(_SEQUENCES)
    # One block so a runtime role that is the migrating role itself is left alone (revoking
    # its privileges would lock the owner out of its own tables).
    op.execute(f"""
    DO $$
    BEGIN
        IF '{role}' = current_user THEN
            RAISE NOTICE 'runtime role {role} is the migrating role: no grants';
            RETURN;
        END IF;
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
            BEGIN
                CREATE ROLE "{role}" NOLOGIN;
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- created concurrently by another database's migration
            END;
        END IF;
        EXECUTE format('GRANT CONNECT ON DATABASE %I TO "{role}"', current_database());
        GRANT USAGE ON SCHEMA public TO "{role}";
        REVOKE ALL ON ALL TABLES IN SCHEMA public FROM "{role}";
        {grants}
        GRANT USAGE, SELECT ON SEQUENCE {sequences} TO "{role}";
        ALTER DEFAULT PRIVILEGES IN SCHEMA public
            GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO "{role}";
        ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO "{role}";
    END $$;
    """)


def downgrade() -> None:
    role = runtime_role()
    op.execute("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
    op.execute(f"""
    DO $$
    BEGIN
        IF '{role}' = current_user
                OR NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
            RETURN;
        END IF;
        ALTER DEFAULT PRIVILEGES IN SCHEMA public
            REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM "{role}";
        ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE USAGE, SELECT ON SEQUENCES FROM "{role}";
        REVOKE ALL ON ALL TABLES IN SCHEMA public FROM "{role}";
        REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM "{role}";
        REVOKE USAGE ON SCHEMA public FROM "{role}";
        EXECUTE format('REVOKE CONNECT ON DATABASE %I FROM "{role}"', current_database());
    END $$;
    """)
