"""Target-database migrations with alembic: in the app image (compose run) or in-process.

``compose-run`` is what the runbook says (``docker compose run --rm <service> <command> upgrade
head``) and uses the migrations shipped in the deployed image. ONE configured invocation
(``[target.migrations] command``, e.g. ``["python3", "-m", "alembic"]``) serves ``current``,
``upgrade``, ``downgrade`` and ``heads``, in the forward migrate and the rollback alike, so an
image that lacks an ``alembic`` executable fails (or works) the same way both times.
``alembic-api`` drives ``alembic.command`` against a ``script_location`` on disk and a database
URL, capturing alembic's output. Revisions are read from the project's version table.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from runbook.adapters.redact import mask, tail
from runbook.errors import StepFailed
from runbook.target import Migrations

Progress = Callable[[str], None]
_REVISION_LINE = re.compile(r"^([0-9A-Za-z_]+)(?: \((?:head|effective head|mergepoint)[^)]*\))*\s*$")


def sqlalchemy_url(url: str) -> str:
    """``postgresql://`` -> ``postgresql+psycopg://`` (psycopg 3 is what is installed)."""
    return re.sub(r"^postgres(?:ql)?://", "postgresql+psycopg://", url)


def parse_current(output: str) -> str | None:
    """The revision printed by ``alembic current`` (None for an empty database)."""
    revs = [m.group(1) for line in output.splitlines() if (m := _REVISION_LINE.match(line.strip()))]
    if len(revs) > 1:
        return ",".join(revs)
    return revs[0] if revs else None


class Migrator(Protocol):
    def current_revision(self) -> str | None: ...
    def heads(self) -> list[str]: ...
    def upgrade(self, target: str = "head") -> str: ...
    def downgrade(self, revision: str) -> str: ...


@dataclass
class AlembicApiMigrator:
    """alembic's Python API against ``script_location`` and ``database_url``."""

    cfg: Migrations
    database_url: str
    secrets: Mapping[str, str]

    def _config(self, out: io.StringIO) -> Any:
        from alembic.config import Config

        if self.cfg.script_location is None:
            raise StepFailed("migrations.mode = 'alembic-api' needs [target.migrations] "
                             "script_location")
        config = Config(stdout=out)
        config.set_main_option("script_location", str(self.cfg.script_location))
        # ConfigParser interpolation: a '%' in a password must be doubled.
        config.set_main_option("sqlalchemy.url", self.database_url.replace("%", "%%"))
        config.attributes["configure_logger"] = False
        return config

    @contextlib.contextmanager
    def _url_variable(self) -> Iterator[None]:
        """While alembic runs in this (step) process: ``url_variable`` holds database_url, so
        an env.py that reads its URL from there migrates the configured database, whatever the
        bot's own environment says; the old value is put back after."""
        name = self.cfg.url_variable
        if not name:
            yield
            return
        old = os.environ.get(name)
        os.environ[name] = self.database_url
        try:
            yield
        finally:
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old

    def _engine(self) -> Any:
        import sqlalchemy as sa

        return sa.create_engine(sqlalchemy_url(self.database_url), poolclass=sa.pool.NullPool)

    def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        engine = self._engine()
        try:
            with engine.connect() as conn:
                heads = MigrationContext.configure(conn, opts={
                    "version_table": self.cfg.version_table,
                    "version_table_schema": self.cfg.version_table_schema,
                }).get_current_heads()
        except Exception as e:  # noqa: BLE001 - any driver error becomes a clear step failure
            raise StepFailed(mask(f"cannot read the target DB's alembic revision: "
                                  f"{type(e).__name__}: {_first(e)}", self.secrets)) from None
        finally:
            engine.dispose()
        return ",".join(heads) if heads else None

    def heads(self) -> list[str]:
        from alembic.script import ScriptDirectory

        config = self._config(io.StringIO())
        try:
            return list(ScriptDirectory.from_config(config).get_heads())
        except Exception as e:  # noqa: BLE001 - alembic raises many types here
            raise StepFailed(f"cannot read migration scripts at {self.cfg.script_location}: "
                             f"{_first(e)}") from None

    def _run(self, what: str, fn: Callable[..., Any], *args: Any) -> str:
        out = io.StringIO()
        log_buf = io.StringIO()
        handler = logging.StreamHandler(log_buf)
        handler.setFormatter(logging.Formatter("%(levelname)-5.5s [%(name)s] %(message)s"))
        logger = logging.getLogger("alembic")
        old_level = logger.level
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        try:
            with self._url_variable():
                fn(self._config(out), *args)
        except Exception as e:  # noqa: BLE001 - a failing migration raises anything
            text = tail(log_buf.getvalue() + out.getvalue(), 10, 1500)
            raise StepFailed(mask(f"alembic {what} failed: {type(e).__name__}: {_first(e)}"
                                  + (f"\n{text}" if text else ""), self.secrets)) from None
        finally:
            logger.removeHandler(handler)
            logger.setLevel(old_level)
        return mask(log_buf.getvalue() + out.getvalue(), self.secrets)

    def upgrade(self, target: str = "head") -> str:
        from alembic import command

        return self._run(f"upgrade {target}", command.upgrade, target)

    def downgrade(self, revision: str) -> str:
        from alembic import command

        return self._run(f"downgrade {revision}", command.downgrade, revision)


@dataclass
class ComposeRunMigrator:
    """``docker compose run --rm --no-deps -T <service> <command> ...`` with the deployed image.

    ``<command>`` is the one configured invocation for every alembic call. With
    ``url_variable`` set, ``database_url`` is passed in it (``-e NAME``: the value travels in
    the compose CLI's environment, never in argv)."""

    cfg: Migrations
    deployer: Any  # ComposeDeployer
    tag_env: Mapping[str, str]
    timeout: Callable[[], float]

    def _service(self) -> str:
        if not self.cfg.service:
            raise StepFailed("migrations.mode = 'compose-run' needs [target.migrations] service "
                             "(the compose service whose image runs the migrations)")
        return self.cfg.service

    def _url_env(self) -> tuple[list[str], dict[str, str]]:
        url = self.cfg.database_url.get_secret_value() if self.cfg.database_url else ""
        if self.cfg.url_variable and url:
            return ["-e", self.cfg.url_variable], {self.cfg.url_variable: url}
        return [], {}

    def _compose_run(self, *args: str, what: str, entrypoint: str | None = None) -> Any:
        flags, url_env = self._url_env()
        if entrypoint:
            flags += ["--entrypoint", entrypoint]
        return self.deployer.compose(
            "run", "--rm", "--no-deps", "-T", *flags, self._service(), *args,
            env={**self.tag_env, **url_env},
            timeout=min(self.cfg.timeout_s, max(1.0, self.timeout())), check=False, what=what)

    def _alembic(self, *args: str, what: str) -> str:
        r = self._compose_run(*self.cfg.command, *args, what=f"alembic {what}")
        output = (r.stdout or "") + (r.stderr or "")
        if r.returncode != 0:
            raise StepFailed(self.deployer._mask(
                f"alembic {what} failed (exit {r.returncode}):\n{tail(output, 10, 1500)}"
                + _hint(self.cfg, output)))
        return self.deployer._mask(output)

    def current_revision(self) -> str | None:
        r = self._compose_run(*self.cfg.command, "current", what="alembic current")
        if r.returncode != 0:
            output = (r.stdout or "") + (r.stderr or "")
            raise StepFailed(self.deployer._mask(
                f"alembic current failed (exit {r.returncode}):\n{tail(output, 10, 1500)}"
                + _hint(self.cfg, output)))
        return parse_current(r.stdout or "")

    def heads(self) -> list[str]:
        out = self._alembic("heads", what="heads")
        rev = parse_current(out)
        return rev.split(",") if rev else []

    def upgrade(self, target: str = "head") -> str:
        return self._alembic("upgrade", target, what=f"upgrade {target}")

    def upgrade_reporting(self, target: str) -> UpgradeReport | None:
        """current, upgrade, current and heads in ONE container: ``sh`` runs the configured
        invocation four times (it and the revision are arguments, never spliced into the
        script). Each container start costs ~0.6 s. None when the image has no ``sh``: the
        caller falls back to separate runs of the same invocation."""
        r = self._compose_run("-c", _ONE_RUN, "sh", validate_revision(target),
                              *self.cfg.command, what=f"alembic upgrade {target}",
                              entrypoint="sh")
        output = (r.stdout or "") + (r.stderr or "")
        parts = _sections(r.stdout or "")
        if "before" not in parts:
            if r.returncode in (126, 127) or "no such file" in output.lower() or \
                    "executable file not found" in output.lower():
                return None
            raise StepFailed(self.deployer._mask(
                f"alembic upgrade {target} failed (exit {r.returncode}):\n"
                f"{tail(output, 10, 1500)}"))
        before = parse_current(parts["before"])
        if r.returncode != 0:
            # Name the command that failed: the last section the script reached.
            phase = list(parts)[-1]
            what = {"before": "current", "upgrade": f"upgrade {target}",
                    "after": "current (after the upgrade)", "heads": "heads"}[phase]
            raise StepFailed(self.deployer._mask(
                f"alembic {what} failed (exit {r.returncode}):\n"
                f"{tail(parts[phase] + chr(10) + (r.stderr or ''), 10, 1500)}"
                + _hint(self.cfg, output)),
                facts={"alembic_before": before} if phase != "before" else {})
        heads = parse_current(parts.get("heads", ""))
        return UpgradeReport(before=before, after=parse_current(parts.get("after", "")),
                             heads=heads.split(",") if heads else [],
                             output=self.deployer._mask(output))

    def downgrade(self, revision: str) -> str:
        return self._alembic("downgrade", revision, what=f"downgrade {revision}")


def _hint(cfg: Migrations, output: str) -> str:
    low = output.lower()
    if "not found" in low or "no such file" in low or "executable file not found" in low:
        return (f"\n(is `{' '.join(cfg.command)}` in the image? set [target.migrations] "
                f"command, e.g. [\"python3\", \"-m\", \"alembic\"])")
    return ""


# Runs inside the target image as ``sh -c _ONE_RUN sh <revision> <command...>``: the configured
# invocation ("$@") four times; a failure stops the sequence where it failed, with its status.
_ONE_RUN = """\
t="$1"; shift
echo @@golive:before; "$@" current || exit $?
echo @@golive:upgrade; "$@" upgrade "$t" || exit $?
echo @@golive:after; "$@" current || exit $?
echo @@golive:heads; "$@" heads
"""


@dataclass(frozen=True)
class UpgradeReport:
    before: str | None
    after: str | None
    heads: list[str]
    output: str


def _sections(stdout: str) -> dict[str, str]:
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in stdout.splitlines():
        if line.startswith("@@golive:"):
            current = out.setdefault(line.removeprefix("@@golive:").strip(), [])
        elif current is not None:
            current.append(line)
    return {k: "\n".join(v) for k, v in out.items()}


def _first(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [""])[0][:300]


_REVISION_ID = re.compile(r"^(?:[0-9A-Za-z_]{1,64}|head|base|heads|[+-]\d{1,3})$")


def validate_revision(rev: str) -> str:
    """Refuse revision arguments that are not plain alembic identifiers."""
    if not isinstance(rev, str) or not _REVISION_ID.match(rev):
        raise StepFailed(f"invalid alembic revision {rev!r}")
    return rev


def revision_chain(script_location: Any) -> dict[str, tuple[tuple[str, ...], str]]:
    """Each migration script's revision -> (its down_revisions, its one-line doc)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    if script_location is None:
        raise StepFailed("no [target.migrations] script_location: the downgrade path is unknown")
    config = Config()
    config.set_main_option("script_location", str(script_location))
    try:
        scripts = list(ScriptDirectory.from_config(config).walk_revisions())
    except Exception as e:  # noqa: BLE001 - alembic raises many types for a bad directory
        raise StepFailed(f"cannot read migration scripts at {script_location}: "
                         f"{_first(e)}") from None
    out: dict[str, tuple[tuple[str, ...], str]] = {}
    for s in scripts:
        down = s.down_revision
        downs = () if down is None else (down,) if isinstance(down, str) else tuple(down)
        out[s.revision] = (downs, (s.doc or "").strip().splitlines()[0] if s.doc else "")
    return out
