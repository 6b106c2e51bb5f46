"""Restore a pg_dump custom-format snapshot over a live database, all or nothing.

``pg_restore --clean --if-exists`` renders the snapshot as SQL that drops and recreates every
object it holds; ``psql --single-transaction -v ON_ERROR_STOP=1`` runs that SQL behind a short
prelude that drops the tables created after the snapshot (they would otherwise survive it).
One transaction: a failure, a timeout or a crash leaves the database exactly as it was, so
the restore can simply be run again. The URL's password travels in PGPASSWORD, never in argv.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path

import psycopg
from psycopg import sql

from runbook.adapters.pgdump import PgError, _tool, plain_url, split_password
from runbook.adapters.redact import tail


def user_tables(url: str) -> list[tuple[str, str]]:
    """Every ordinary or partitioned user table as (schema, table)."""
    with psycopg.connect(plain_url(url), connect_timeout=10, autocommit=True) as conn:
        return [(r[0], r[1]) for r in conn.execute(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid ="
            " c.relnamespace WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition"
            " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
            " AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'"
            " ORDER BY 1, 2").fetchall()]


def label(schema: str, table: str) -> str:
    """The table's name as the backup drill's figures name it (``public`` left out)."""
    return table if schema == "public" else f"{schema}.{table}"


def _drop_prelude(url: str, tables: Iterable[tuple[str, str]]) -> str:
    with psycopg.connect(plain_url(url), connect_timeout=10, autocommit=True) as conn:
        return "".join(
            sql.SQL("DROP TABLE IF EXISTS {}.{} CASCADE;\n").format(
                sql.Identifier(s), sql.Identifier(t)).as_string(conn) for s, t in tables)


def restore_over(path: Path, url: str, *, drop_first: Iterable[tuple[str, str]] = (),
                 timeout: float, bin_dir: Path | None = None) -> None:
    """Replace the database at ``url`` with the snapshot at ``path`` in one transaction."""
    bare, env = split_password(url)
    env = {**os.environ, **env}
    prelude = "BEGIN;\n" + (_drop_prelude(url, list(drop_first)) if drop_first else "")
    render = [_tool(bin_dir, "pg_restore"), "--clean", "--if-exists", "--exit-on-error",
              "--file=-", str(path)]
    apply = [_tool(bin_dir, "psql"), "--no-psqlrc", "--quiet", "--no-password",
             "-v", "ON_ERROR_STOP=1", f"--dbname={bare}"]
    # stderr goes to files: a chatty tool must never block on a full pipe.
    with tempfile.TemporaryFile("w+") as err1, tempfile.TemporaryFile("w+") as err2:
        try:
            producer = subprocess.Popen(render, env=env, stdout=subprocess.PIPE, stderr=err1)
        except OSError as e:
            raise PgError(f"cannot run pg_restore: {e}") from None
        try:
            consumer = subprocess.Popen(apply, env=env, stdin=subprocess.PIPE,
                                        stdout=subprocess.DEVNULL, stderr=err2)
        except OSError as e:
            producer.kill()
            producer.wait()
            raise PgError(f"cannot run psql: {e}") from None

        def pump() -> None:
            # COMMIT only once pg_restore has rendered the whole snapshot without an error:
            # a snapshot that breaks off half way must never leave half a database behind.
            try:
                consumer.stdin.write(prelude.encode())
                shutil.copyfileobj(producer.stdout, consumer.stdin, 1 << 16)
                if producer.wait() == 0:
                    consumer.stdin.write(b"COMMIT;\n")
            except (BrokenPipeError, OSError):
                pass  # psql stopped early; its exit status and stderr say why
            finally:
                try:
                    consumer.stdin.close()
                except OSError:
                    pass

        feeder = threading.Thread(target=pump, name="pg-restore-pump", daemon=True)
        feeder.start()
        try:
            consumer.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # Killing psql drops its connection: PostgreSQL rolls the transaction back.
            consumer.kill()
            consumer.wait()
            raise PgError(f"the restore did not finish within {timeout:.0f} s; the "
                          "transaction was rolled back, the database is unchanged") from None
        finally:
            if producer.poll() is None:
                producer.kill()  # psql is gone: nothing reads what pg_restore still writes
            producer.wait()
            feeder.join(timeout=10)
        err1.seek(0)
        err2.seek(0)
        if consumer.returncode != 0:
            raise PgError(f"the restore failed and was rolled back (psql exit "
                          f"{consumer.returncode}): {tail(err2.read(), 3, 400)}")
        if producer.returncode != 0:
            raise PgError(f"pg_restore could not read the whole snapshot (exit "
                          f"{producer.returncode}): {tail(err1.read(), 3, 400)}; nothing was "
                          "committed, the database is unchanged")
