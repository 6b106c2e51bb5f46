"""Only the door writes an inbox row: the inbox's INSERT moves to a door role.

The work side trusts an inbox row without checking a signature again (docs/THREAT_MODEL.md),
so the role it runs as (the runtime role, DATABASE_URL) must not be able to write one. The
door (``golive serve``'s web process, ``golive socket``) records requests as the door role
(GOLIVE_DOOR_DATABASE_URL), named by ``-x door_role=NAME`` or the ``golive.door_role`` option
(GOLIVE_DOOR_ROLE), default ``golive_door``. The role is created NOLOGIN when missing (the
operator gives it LOGIN and a password) and granted exactly what the door's SQL does:

- inbox: SELECT, INSERT (the insert's RETURNING and its conflict check), DELETE (the door
  purges replay keys older than the replay window);
- inbox_id_seq: USAGE, SELECT.

The runtime role loses INSERT on the inbox (it keeps SELECT, UPDATE, DELETE: claims, done
marks, purges). When either role is the migrating role itself, or the two roles are one,
nothing is granted or revoked (a one-role development setup keeps working).

Revision ID: 0014_door_role
Revises: 0013_inbox_request
Create Date: 2026-12-08
"""
import re

from alembic import context, op

revision = "0014_door_role"
down_revision = "0013_inbox_request"
branch_labels = None
depends_on = None

DEFAULT_DOOR_ROLE = "golive_door"


def _role(option: str, default: str) -> str:
    """A role's name, from ``-x OPTION=`` or the ``golive.OPTION`` config option; validated."""
    name = (context.get_x_argument(as_dictionary=True).get(option)
            or context.config.get_main_option(f"golive.{option}")
            or default)
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise ValueError(f"{option.replace('_', ' ')} {name!r}: use lowercase letters, digits and _")
    return name


def _roles() -> tuple[str, str]:
    """(the door role, the runtime role: as 0002_audit_hardening names it)."""
    return _role("door_role", DEFAULT_DOOR_ROLE), _role("runtime_role", "golive_runtime")


def upgrade() -> None:
    door, runtime = _roles()
    op.execute(f"""
    DO $$
    BEGIN
        IF '{door}' = current_user OR '{door}' = '{runtime}' OR '{runtime}' = current_user THEN
            RAISE NOTICE 'door role {door}, runtime role {runtime}: one role, no split';
            RETURN;
        END IF;
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{door}') THEN
            BEGIN
                CREATE ROLE "{door}" NOLOGIN;
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- created concurrently by another database's migration
            WHEN insufficient_privilege THEN
                RAISE EXCEPTION 'the door role {door} does not exist and this role may not '
                    'create it: create it first (CREATE ROLE {door} LOGIN PASSWORD ...), or '
                    'name an existing one with GOLIVE_DOOR_ROLE';
            END;
        END IF;
        EXECUTE format('GRANT CONNECT ON DATABASE %I TO "{door}"', current_database());
        GRANT USAGE ON SCHEMA public TO "{door}";
        GRANT SELECT, INSERT, DELETE ON inbox TO "{door}";
        GRANT USAGE, SELECT ON SEQUENCE inbox_id_seq TO "{door}";
        REVOKE INSERT ON inbox FROM "{runtime}";
    END $$;
    """)


def downgrade() -> None:
    door, runtime = _roles()
    op.execute(f"""
    DO $$
    BEGIN
        IF '{door}' = current_user OR '{door}' = '{runtime}' OR '{runtime}' = current_user THEN
            RETURN;
        END IF;
        IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{runtime}') THEN
            GRANT INSERT ON inbox TO "{runtime}";
        END IF;
        IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{door}') THEN
            REVOKE ALL ON inbox FROM "{door}";
            REVOKE ALL ON SEQUENCE inbox_id_seq FROM "{door}";
            REVOKE USAGE ON SCHEMA public FROM "{door}";
            EXECUTE format('REVOKE CONNECT ON DATABASE %I FROM "{door}"', current_database());
        END IF;
    END $$;
    """)
