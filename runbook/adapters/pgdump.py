"""pg_dump / pg_restore for the backup drill, and the figures that prove a restore is whole.

The dump reads an exported snapshot (``pg_dump --snapshot``) of a REPEATABLE READ transaction
that stays open while the source-side figures are computed in it: the row counts and ledger
md5s describe exactly the rows in the dump, however busy the source is. Connection URLs never
reach argv (``ps`` shows it): the password goes through PGPASSWORD.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from runbook.adapters.redact import tail


class PgError(Exception):
    """A pg_dump / pg_restore / SQL step failed; the message says which and why."""


def plain_url(url: str) -> str:
    return re.sub(r"^postgres(?:ql)?(\+\w+)?://", "postgresql://", url)


def split_password(url: str) -> tuple[str, dict[str, str]]:
    """(URL without the password, env carrying it) for libpq command-line tools."""
    parts = urlsplit(plain_url(url))
    env: dict[str, str] = {}
    netloc = parts.netloc
    if parts.password is not None:
        env["PGPASSWORD"] = unquote(parts.password)
        userinfo, _, host = netloc.rpartition("@")
        netloc = f"{userinfo.split(':', 1)[0]}@{host}"
    return urlunsplit(parts._replace(netloc=netloc)), env


def with_dbname(url: str, name: str) -> str:
    parts = urlsplit(plain_url(url))
    return urlunsplit(parts._replace(path=f"/{name}"))


def _tool(bin_dir: Path | None, name: str) -> str:
    return str(bin_dir / name) if bin_dir else name


@dataclass
class Figures:
    """Per-table row counts and an md5 per ledger table over its rows in primary-key order."""

    counts: dict[str, int] = field(default_factory=dict)
    md5: dict[str, str] = field(default_factory=dict)

    def diff(self, other: Figures) -> list[str]:
        out = []
        for t in sorted(set(self.counts) | set(other.counts)):
            a, b = self.counts.get(t), other.counts.get(t)
            if a != b:
                out.append(f"{t}: {a if a is not None else 'missing'} rows in the source, "
                           f"{b if b is not None else 'missing'} restored")
        for t in sorted(self.md5):
            if self.md5[t] != other.md5.get(t):
                out.append(f"{t}: md5 of the rows differs ({self.md5[t][:8]} vs "
                           f"{(other.md5.get(t) or 'missing')[:8]})")
        return out


def _session(conn: psycopg.Connection) -> None:
    # Row text must render identically on both sides.
    conn.execute("SET TimeZone = 'UTC'")
    conn.execute("SET DateStyle = 'ISO, YMD'")
    conn.execute("SET extra_float_digits = 3")


def figures(conn: psycopg.Connection, ledger_tables: list[str]) -> Figures:
    """Row counts of every user table and md5s of the ledger tables, in ``conn``'s snapshot."""
    f = Figures()
    tables = conn.execute(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition"
        " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
        " AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'"
        " ORDER BY 1, 2").fetchall()
    for schema, table in tables:
        label = table if schema == "public" else f"{schema}.{table}"
        f.counts[label] = conn.execute(
            sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema),
                                                          sql.Identifier(table))).fetchone()[0]
    for t in ledger_tables:
        schema, _, table = t.rpartition(".")
        schema = schema or "public"
        pk = [r[0] for r in conn.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid"
            " AND a.attnum = ANY(i.indkey) WHERE i.indisprimary"
            " AND i.indrelid = to_regclass(%s) ORDER BY array_position(i.indkey, a.attnum)",
            (f'"{schema}"."{table}"',)).fetchall()]
        if not pk:
            exists = conn.execute("SELECT to_regclass(%s)", (f'"{schema}"."{table}"',)).fetchone()
            raise PgError(f"ledger table {t} " + ("has no primary key" if exists[0] else
                                                 "does not exist") + " in the source database")
        order = sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in pk)
        f.md5[t] = conn.execute(sql.SQL(
            "SELECT md5(coalesce(string_agg(t::text, E'\\n' ORDER BY {}), '')) FROM {}.{} t"
        ).format(order, sql.Identifier(schema), sql.Identifier(table))).fetchone()[0]
    return f


def dump_with_figures(url: str, path: Path, ledger_tables: list[str], *, timeout: float,
                      bin_dir: Path | None = None) -> Figures:
    """``pg_dump -Fc`` of ``url`` into ``path`` and the source figures, from one snapshot."""
    bare, env = split_password(url)
    with psycopg.connect(plain_url(url), connect_timeout=10, autocommit=True) as conn:
        _session(conn)
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
        argv = [_tool(bin_dir, "pg_dump"), "--format=custom", f"--snapshot={snapshot}",
                "--no-password", f"--file={path}", f"--dbname={bare}"]
        try:
            proc = subprocess.Popen(argv, env={**os.environ, **env}, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
        except OSError as e:
            raise PgError(f"cannot run pg_dump: {e}") from None
        try:
            src = figures(conn, ledger_tables)  # while pg_dump reads the same snapshot
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise PgError(f"pg_dump did not finish within {timeout:.0f} s") from None
        except BaseException:
            proc.kill()
            proc.communicate()
            raise
        conn.execute("ROLLBACK")
    if proc.returncode != 0:
        raise PgError(f"pg_dump failed (exit {proc.returncode}): {tail(err, 3, 400)}")
    return src


def run_snapshot_command(argv: list[str], path: Path, url: str, *, timeout: float) -> None:
    """The team's own snapshot command; ``{path}`` is where the custom-format dump must land."""
    bare, env = split_password(url)
    cmd = [a.replace("{path}", str(path)) for a in argv]
    try:
        r = subprocess.run(cmd, env={**os.environ, **env, "PGURL": bare}, capture_output=True,
                           text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise PgError(f"the snapshot command did not finish within {timeout:.0f} s") from None
    except OSError as e:
        raise PgError(f"cannot run the snapshot command {cmd[0]}: {e}") from None
    if r.returncode != 0:
        raise PgError(f"the snapshot command failed (exit {r.returncode}): "
                      f"{tail(r.stderr or r.stdout, 3, 400)}")
    if not path.is_file():
        raise PgError(f"the snapshot command exited 0 but wrote nothing to {path}")


def source_figures(url: str, ledger_tables: list[str]) -> Figures:
    with psycopg.connect(plain_url(url), connect_timeout=10, autocommit=True) as conn:
        _session(conn)
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        out = figures(conn, ledger_tables)
        conn.execute("ROLLBACK")
        return out


def file_digest(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest(), path.stat().st_size


def create_scratch(admin_url: str, prefix: str = "golive_drill") -> tuple[str, str]:
    """A new empty database on the scratch server: (name, URL)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(plain_url(admin_url), autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name, with_dbname(admin_url, name)


def drop_scratch(admin_url: str, name: str) -> None:
    with psycopg.connect(plain_url(admin_url), autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))


def restore(path: Path, url: str, *, timeout: float, bin_dir: Path | None = None) -> None:
    """``pg_restore`` a custom-format dump into the (empty) database at ``url``."""
    bare, env = split_password(url)
    argv = [_tool(bin_dir, "pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error",
            "--no-password", f"--dbname={bare}", str(path)]
    try:
        r = subprocess.run(argv, env={**os.environ, **env}, capture_output=True, text=True,
                           timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise PgError(f"pg_restore did not finish within {timeout:.0f} s") from None
    except OSError as e:
        raise PgError(f"cannot run pg_restore: {e}") from None
    if r.returncode != 0:
        raise PgError(f"pg_restore failed (exit {r.returncode}): {tail(r.stderr, 3, 400)}")


def restored_figures(url: str, ledger_tables: list[str]) -> Figures:
    with psycopg.connect(plain_url(url), connect_timeout=10, autocommit=True) as conn:
        _session(conn)
        return figures(conn, ledger_tables)


Clock = Callable[[], float]
