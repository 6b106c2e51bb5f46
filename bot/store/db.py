"""PostgreSQL access: a psycopg 3 pool, and the bot's own schema through alembic."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).with_name("migrations")


class DatabaseUnavailable(Exception):
    """The database did not answer; the user sees a short message and nothing is half-done."""


def sqlalchemy_url(url: str) -> str:
    """alembic speaks SQLAlchemy URLs: pin the psycopg 3 driver."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def alembic_config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolation treats % specially (percent-encoded passwords).
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Apply the bot's migrations up to ``revision``."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    """The revision the database is at, or None before the first migration."""
    with psycopg.connect(url, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT to_regclass('alembic_version') IS NOT NULL").fetchone()
        if not row or not row[0]:
            return None
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        return row[0] if row else None


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config("postgresql://x/y")).get_current_head()
    assert head is not None
    return head


class Database:
    """A connection pool that fails fast with DatabaseUnavailable instead of hanging."""

    def __init__(self, url: str, *, min_size: int = 2, max_size: int = 16, timeout: float = 5.0):
        self.url = url
        self.timeout = timeout
        self.pool = ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            kwargs={"row_factory": dict_row, "connect_timeout": 3, "autocommit": False},
            check=ConnectionPool.check_connection,
            open=False,
            name="golive",
        )

    def open(self, wait: bool = False) -> None:
        self.pool.open(wait=wait, timeout=self.timeout)

    def close(self) -> None:
        self.pool.close()

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A pooled connection; commit on success, roll back on error."""
        try:
            with self.pool.connection(timeout=self.timeout) as conn:
                yield conn
        except (PoolTimeout, psycopg.OperationalError) as e:
            raise DatabaseUnavailable(str(e).splitlines()[0] if str(e) else type(e).__name__) from e

    transaction = connection

    def ping(self, timeout: float = 1.5) -> bool:
        """True when the database answers within ``timeout`` seconds."""
        try:
            with self.pool.connection(timeout=timeout) as conn:
                conn.execute("SELECT 1")
            return True
        except PoolTimeout:
            return False
        except DatabaseUnavailable:
            return False
        except psycopg.Error:
            return False
