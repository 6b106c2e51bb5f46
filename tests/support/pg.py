"""A throwaway PostgreSQL database per test session, on the server CI provides."""

from __future__ import annotations

import os
import uuid

import psycopg

ADMIN_URL = os.environ.get("GOLIVE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def db_url(name: str) -> str:
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


def create_database(prefix: str = "golive_test") -> tuple[str, str]:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, db_url(name)


def drop_database(name: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def reset_state(url: str) -> None:
    """Empty the bot's tables between tests (TRUNCATE bypasses the append-only row trigger)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE audit_log, approval_votes, step_executions, approvals, runs"
                     " RESTART IDENTITY CASCADE")
        conn.execute("UPDATE audit_head SET last_id = 0, last_hash = repeat('0', 64)")
