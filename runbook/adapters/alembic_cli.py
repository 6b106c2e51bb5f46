"""alembic for the migration check, in a child Python process: offline SQL and upgrades.

A child process because alembic's ``context`` is a module-level proxy (two threads running
alembic at once would share it) and because a stuck migration must be killable when the
check's time is up. The URL travels in the environment, never in argv.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg

from runbook.adapters.pgdump import plain_url
from runbook.adapters.redact import tail

_SCRIPT = """\
import os, sys
from alembic import command
from alembic.config import Config
cfg = Config()
cfg.set_main_option("script_location", sys.argv[1])
cfg.set_main_option("sqlalchemy.url", os.environ["GOLIVE_ALEMBIC_URL"].replace("%", "%%"))
cfg.attributes["configure_logger"] = False
command.upgrade(cfg, sys.argv[3], sql=sys.argv[2] == "sql")
"""


class AlembicError(Exception):
    """alembic failed; the message carries the tail of its output."""


def _run(script_location: Path, url: str, mode: str, target: str, timeout: float) -> str:
    env = {**os.environ, "GOLIVE_ALEMBIC_URL": url}
    try:
        r = subprocess.run([sys.executable, "-c", _SCRIPT, str(script_location), mode, target],
                           env=env, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise AlembicError(f"alembic upgrade {target} did not finish within {timeout:.0f} s"
                           ) from None
    if r.returncode != 0:
        raise AlembicError(f"alembic upgrade {target}{' --sql' if mode == 'sql' else ''} "
                           f"failed:\n{tail(r.stderr or r.stdout, 6, 1200)}")
    return r.stdout


def offline_sql(script_location: Path, url: str, start: str | None, timeout: float) -> str:
    """The SQL ``alembic upgrade [start:]head --sql`` prints."""
    return _run(script_location, url, "sql", f"{start}:head" if start else "head", timeout)


def upgrade(script_location: Path, url: str, timeout: float) -> str:
    return _run(script_location, url, "online", "head", timeout)


def heads(script_location: Path) -> list[str]:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    try:
        return list(ScriptDirectory.from_config(cfg).get_heads())
    except Exception as e:  # noqa: BLE001 - alembic raises many types for a bad directory
        raise AlembicError(f"cannot read migration scripts at {script_location}: {e}") from None


def known_revisions(script_location: Path) -> set[str]:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    return {s.revision for s in ScriptDirectory.from_config(cfg).walk_revisions()}


def current(url: str, timeout: float = 10.0) -> str | None:
    """The database's alembic revision(s), comma-joined; None for a database without one."""
    with psycopg.connect(plain_url(url), connect_timeout=max(1, int(timeout)),
                         autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('alembic_version')").fetchone()[0] is None:
            return None
        revs = [r[0] for r in conn.execute("SELECT version_num FROM alembic_version ORDER BY 1")]
    return ",".join(revs) if revs else None
