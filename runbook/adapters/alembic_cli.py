"""alembic for the migration check's dry run: offline SQL and a real upgrade, on the copy only.

The dry run runs the team's ``env.py``, and a common ``env.py`` takes its database URL from an
environment variable the bot itself may hold (the production URL). So the child never sees the
bot's environment: it gets only what the dry run passes, the SCRATCH copy's URL in the variable
the team names (``url_variable``) plus a few basics (PATH, HOME, locale).

Two runners, one interface (``history``, ``offline_sql``, ``upgrade``):

- :class:`ImageRunner` (``mode = "image"``): ``docker run --rm`` of the release candidate's image
  with the configured alembic invocation, exactly as the forward migrate runs it (the team's
  alembic, driver and migrations come from their image, not from golive's venv). ``-e NAME``
  forwards only the names the dry run sets; the compose file's environment is not used.
- :class:`ApiRunner` (``mode = "alembic-api"``): a child Python process running alembic's API
  on a local ``script_location`` (a child because alembic's ``context`` is a module-level proxy
  and a stuck migration must be killable), with the same clean environment.

The URL travels in the environment, never in argv. Reading ``current`` from the target database
stays a read-only query from golive (:func:`current`), on the project's version table.
"""

from __future__ import annotations

import os
import re
import secrets as pysecrets
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql as pgsql

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

# What a child process may keep of golive's environment: where programs are and how to print.
BASICS = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR")
# What the docker CLI itself needs to find the engine (never forwarded into the container).
_DOCKER_CLI = ("DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY",
               "DOCKER_CONTEXT")
_HISTORY_LINE = re.compile(r"->\s*([0-9A-Za-z_]+)((?:\s*\([^)]*\))*)")


class AlembicError(Exception):
    """alembic failed; the message carries the tail of its output."""


def clean_env(passed: Mapping[str, str], keep: Sequence[str] = BASICS) -> dict[str, str]:
    """Only ``keep`` of golive's own environment, plus exactly what the dry run ``passed``."""
    base = {k: os.environ[k] for k in keep if k in os.environ}
    base.setdefault("PATH", os.defpath)
    return {**base, **passed}


def dry_run_vars(url: str, url_variable: str | None, extra: Mapping[str, str]
                 ) -> dict[str, str]:
    """The variables the dry run passes: the team's extras, then the scratch URL under the
    team's variable name and under GOLIVE_ALEMBIC_URL (so no extra can point it elsewhere)."""
    out = {**extra, "GOLIVE_ALEMBIC_URL": url}
    if url_variable:
        out[url_variable] = url
    return out


def _upgrade_what(mode: str, target: str) -> str:
    return f"alembic upgrade {target}{' --sql' if mode == 'sql' else ''}"


@dataclass
class ApiRunner:
    """alembic's API in a child of golive's Python, on ``script_location``, clean env."""

    script_location: Path
    url_variable: str | None = None
    extra_env: Mapping[str, str] = field(default_factory=dict)

    def _run(self, url: str, mode: str, target: str, timeout: float) -> str:
        env = clean_env(dry_run_vars(url, self.url_variable, self.extra_env))
        try:
            r = subprocess.run([sys.executable, "-c", _SCRIPT, str(self.script_location), mode,
                                target], env=env, capture_output=True, text=True,
                               timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise AlembicError(f"{_upgrade_what(mode, target)} did not finish within "
                               f"{timeout:.0f} s") from None
        if r.returncode != 0:
            raise AlembicError(f"{_upgrade_what(mode, target)} failed:\n"
                               f"{tail(r.stderr or r.stdout, 6, 1200)}")
        return r.stdout

    def history(self, timeout: float) -> tuple[list[str], set[str]]:
        return heads(self.script_location), known_revisions(self.script_location)

    def offline_sql(self, url: str, start: str | None, timeout: float) -> str:
        """The SQL ``alembic upgrade [start:]head --sql`` prints."""
        return self._run(url, "sql", f"{start}:head" if start else "head", timeout)

    def upgrade(self, url: str, timeout: float) -> str:
        return self._run(url, "online", "head", timeout)


@dataclass
class ImageRunner:
    """The configured alembic invocation inside ``image`` (``docker run --rm``), clean env."""

    image: str
    command: Sequence[str]
    url_variable: str | None = None
    extra_env: Mapping[str, str] = field(default_factory=dict)
    network: str | None = None
    docker_host: str | None = None
    docker: str = "docker"
    pull: str = "always"
    """``docker run --pull`` of the first run (a tag re-pushed since is fetched again); the
    runs after it use the image that one left (``never``)."""
    _pulled: bool = field(default=False, init=False, repr=False)

    def _cli_env(self, passed: Mapping[str, str]) -> dict[str, str]:
        env = clean_env(passed, keep=BASICS + _DOCKER_CLI)
        if self.docker_host:
            env["DOCKER_HOST"] = self.docker_host
        return env

    def run(self, args: Sequence[str], *, url: str | None, timeout: float, what: str
            ) -> subprocess.CompletedProcess[str]:
        """``docker run --rm [-e NAME]... IMAGE <command> <args>``; the values of the names
        come from the CLI's own (clean) environment, so they never appear in argv."""
        passed = (dry_run_vars(url, self.url_variable, self.extra_env) if url is not None
                  else dict(self.extra_env))
        exe = shutil.which(self.docker, path=os.environ.get("PATH")) or self.docker
        name = f"golive-migcheck-{pysecrets.token_hex(6)}"
        argv = [exe, "run", "--rm", "--name", name, "--pull",
                "never" if self._pulled else self.pull]
        if self.network:
            argv += ["--network", self.network]
        for key in passed:
            argv += ["-e", key]
        argv += [self.image, *self.command, *args]
        env = self._cli_env(passed)
        try:
            r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout,
                               check=False, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            subprocess.run([exe, "rm", "-f", name], env=env, capture_output=True, check=False,
                           timeout=30)
            raise AlembicError(f"{what} did not finish within {timeout:.0f} s (in {self.image})"
                               ) from None
        except OSError as e:
            raise AlembicError(f"cannot run the docker CLI ({self.docker}): {e}") from None
        self._pulled = self._pulled or r.returncode != 125
        if r.returncode != 0:
            out = tail(r.stderr or r.stdout, 6, 1200)
            if r.returncode == 125:  # docker itself: no image, no engine, bad network
                raise AlembicError(f"docker could not run {self.image} for {what}:\n{out}")
            raise AlembicError(f"{what} failed in {self.image} (exit {r.returncode}):\n{out}")
        return r

    def history(self, timeout: float) -> tuple[list[str], set[str]]:
        """The image's heads and every revision it knows, from ``<command> history``."""
        r = self.run(["history"], url=None, timeout=timeout, what="alembic history")
        return parse_history(r.stdout)

    def offline_sql(self, url: str, start: str | None, timeout: float) -> str:
        target = f"{start}:head" if start else "head"
        return self.run(["upgrade", target, "--sql"], url=url, timeout=timeout,
                        what=_upgrade_what("sql", target)).stdout

    def upgrade(self, url: str, timeout: float) -> str:
        r = self.run(["upgrade", "head"], url=url, timeout=timeout, what="alembic upgrade head")
        return (r.stdout or "") + (r.stderr or "")


def parse_history(output: str) -> tuple[list[str], set[str]]:
    """(heads, known revisions) from ``alembic history`` lines such as
    ``0001_ledger -> 0002_payout_idempotency (head), payout idempotency``."""
    heads_: list[str] = []
    known: set[str] = set()
    for line in output.splitlines():
        m = _HISTORY_LINE.search(line)
        if not m:
            continue
        known.add(m.group(1))
        if re.search(r"\((?:effective )?head\)", m.group(2)):
            heads_.append(m.group(1))
    return sorted(heads_), known


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


# Kept for callers of the module-level API (a local script_location, golive's Python).
def offline_sql(script_location: Path, url: str, start: str | None, timeout: float) -> str:
    """The SQL ``alembic upgrade [start:]head --sql`` prints."""
    return ApiRunner(script_location).offline_sql(url, start, timeout)


def upgrade(script_location: Path, url: str, timeout: float) -> str:
    return ApiRunner(script_location).upgrade(url, timeout)


def current(url: str, timeout: float = 10.0, *, version_table: str = "alembic_version",
            schema: str | None = None) -> str | None:
    """The database's alembic revision(s) in ``[schema.]version_table``, comma-joined; None
    for a database without that table. Read-only: one SELECT."""
    table = (pgsql.Identifier(schema, version_table) if schema
             else pgsql.Identifier(version_table))
    with psycopg.connect(plain_url(url), connect_timeout=max(1, int(timeout)),
                         autocommit=True) as conn:
        # to_regclass takes a (quoted) name: an unusual name is quoted, never spliced.
        quoted = table.as_string(conn)
        if conn.execute("SELECT to_regclass(%s)", (quoted,)).fetchone()[0] is None:
            return None
        revs = [r[0] for r in conn.execute(
            pgsql.SQL("SELECT version_num FROM {} ORDER BY 1").format(table))]
    return ",".join(revs) if revs else None
