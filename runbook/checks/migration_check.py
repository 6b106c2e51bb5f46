"""Check 4, migrations: current vs head, the offline SQL (attached, linted with squawk) and a
real ``upgrade head`` on the prod copy the backup drill restored.

The dry run can reach only the copy: alembic runs inside the RC's image (or a child of golive's
Python) with an environment that holds only the scratch URL (in the variable the team's env.py
reads, ``url_variable``), never the bot's own environment, which may hold the production URL.
``current`` is one read-only SELECT of the project's version table in the target database.

Run alone (``/golive preflight migration_check``), it makes its own copy with pg_dump and
pg_restore. squawk findings are warnings: they show what the migration will lock or break.
"""

from __future__ import annotations

import re
from typing import Any

from runbook.adapters import alembic_cli, pgdump, squawk
from runbook.checks.backup_drill import PROD_COPY, PROD_COPY_DONE
from runbook.checks.base import CheckContext, CheckFailed, PreflightResult, Status, worst
from runbook.checks.sections.migration_check import MigrationCheckConfig

NAME = "migration_check"
_SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|TOKEN|SECRET|DATABASE_URL|DSN|URL|API_KEY|PRIVATE)",
                          re.IGNORECASE)


def run(ctx: CheckContext) -> PreflightResult:
    """Compare revisions, produce and lint the SQL, upgrade the prod copy."""
    try:
        return _run(ctx)
    finally:
        ctx.peers.publish(PROD_COPY_DONE, True)


def _urls(ctx: CheckContext, cfg: MigrationCheckConfig) -> tuple[str, str | None]:
    target, scratch = cfg.database_url, cfg.scratch_url
    if target is None:
        raise CheckFailed("no database to compare: set [preflight.migration_check] database_url "
                          "(or [preflight.backup_drill] database_url)")
    return target.get_secret_value(), scratch.get_secret_value() if scratch else None


def _own_copy(ctx: CheckContext, src: str, admin: str) -> tuple[str, str]:
    name, url = pgdump.create_scratch(admin, prefix="golive_migcopy")
    path = None
    try:
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory(prefix="golive-migcopy-") as d:
            path = Path(d) / "copy.dump"
            pgdump.dump_with_figures(src, path, [], timeout=ctx.remaining())
            pgdump.restore(path, url, timeout=ctx.remaining())
    except BaseException:
        pgdump.drop_scratch(admin, name)
        raise
    return name, url


def _runner(ctx: CheckContext, cfg: MigrationCheckConfig) -> Any:
    """The dry run's runner: the RC's image (the team's alembic), or alembic's API on a local
    script_location; both give the team's env.py only what the dry run passes."""
    if cfg.run_mode == "image":
        if not ctx.rc_tag and "{tag}" in (cfg.image or ""):
            raise CheckFailed("no RC tag to fill [preflight.migration_check] image's {tag}: "
                              "start a run with `/golive start <rc-tag>`")
        image = (cfg.image or "").replace("{tag}", ctx.rc_tag or "")
        return alembic_cli.ImageRunner(image, cfg.command, cfg.url_variable, cfg.env,
                                       network=cfg.network, docker_host=cfg.docker_host,
                                       pull=cfg.pull)
    return alembic_cli.ApiRunner(cfg.script_location, cfg.url_variable, cfg.env)


def _where(cfg: MigrationCheckConfig) -> str:
    return ("image" if cfg.run_mode == "image" else "script_location")


def _run(ctx: CheckContext) -> PreflightResult:
    cfg: MigrationCheckConfig = ctx.require_config(NAME)
    target, admin = _urls(ctx, cfg)
    ctx.add_secret("migration_check.database_url", target)
    ctx.add_secret("migration_check.scratch_url", admin)
    for key, value in cfg.env.items():
        if _SECRET_NAME.search(key):
            ctx.add_secret(f"migration_check.env.{key}", value)
    details: list[str] = []
    parts: list[tuple[Status, str]] = []
    files: dict[str, str] = {}
    runner = _runner(ctx, cfg)
    if cfg.run_mode == "image":
        ctx.say(f"reading the migrations in {runner.image}")
    try:
        heads, known = runner.history(timeout=min(120.0, ctx.remaining()))
    except (alembic_cli.AlembicError, OSError) as e:
        raise CheckFailed(f"{str(e).splitlines()[0]} (check [preflight.migration_check] "
                          f"{_where(cfg)})", details=[str(e)]) from None
    head = ",".join(sorted(heads))
    try:
        current = alembic_cli.current(target, timeout=min(10.0, ctx.remaining()),
                                      version_table=cfg.version_table,
                                      schema=cfg.version_table_schema)
    except pgdump.psycopg.Error as e:
        raise CheckFailed(f"cannot read the target database's alembic revision: "
                          f"{str(e).strip().splitlines()[0][:200]}") from None
    facts = {"alembic_current": current, "alembic_head": head}
    details.append(f"alembic current {current or '(empty database)'}, head {head}")
    if not heads:
        raise CheckFailed(f"no migrations found (check [preflight.migration_check] "
                          f"{_where(cfg)})", details=details, facts=facts)
    if len(heads) != 1:
        parts.append((Status.FAIL, f"the migrations have {len(heads)} heads ({head}): merge them"))
    if current and any(r not in known for r in current.split(",")):
        raise CheckFailed(f"the database is at {current}, which the RC's migrations do not know "
                          "(is the database ahead of this release?)", details=details,
                          facts=facts)
    pending = current != head
    if pending:
        # Offline SQL of what will run, attached and linted, then a real upgrade on the copy.
        # Both point at the scratch server only: the prod URL is never handed to alembic.
        parts += _dry_run(ctx, cfg, runner, target, admin, current, head, details, files,
                          facts)
    status = worst([s for s, _ in parts] or [Status.OK])
    lead = (f"{current or 'base'} → {head} pending" if pending else f"at head {head}")
    shown = [f for s, f in parts if s != Status.OK] or [f for _, f in parts]
    return PreflightResult(NAME, status, "; ".join([lead, *shown]), details, files, facts)


def _render(ctx: CheckContext, cfg: MigrationCheckConfig, runner: Any, url: str,
            current: str | None, head: str, details: list[str], files: dict[str, str],
            facts: dict) -> list[tuple[Status, str]]:
    parts: list[tuple[Status, str]] = []
    try:
        sql = runner.offline_sql(url, current, timeout=ctx.remaining())
    except alembic_cli.AlembicError as e:
        raise CheckFailed(f"dry run failed: {str(e).splitlines()[0]}", details=details + [str(e)],
                          facts=facts) from None
    files[f"migration-{current or 'base'}-to-{head}.sql"] = sql
    details.append(f"dry run: {len(sql.splitlines())} lines of SQL (attached)")
    if cfg.lint:
        try:
            findings = squawk.lint(sql, binary=cfg.squawk, exclude=cfg.squawk_exclude,
                                   pg_version=cfg.pg_version, timeout=min(30.0, ctx.remaining()))
        except squawk.SquawkError as e:
            parts.append((Status.WARN, f"lint did not run: {e}"))
        else:
            details.extend(f"⚠️ {f}" for f in findings)
            facts["squawk_findings"] = len(findings)
            if findings:
                rules = sorted({f.rule for f in findings})
                parts.append((Status.WARN, (f"squawk: {len(findings)} finding(s) "
                              f"({', '.join(rules)})")))
    return parts


def _dry_run(ctx: CheckContext, cfg: MigrationCheckConfig, runner: Any, target: str,
             admin: str | None, current: str | None, head: str, details: list[str],
             files: dict[str, str], facts: dict) -> list[tuple[Status, str]]:
    parts: list[tuple[Status, str]] = []
    rendered = False
    if admin:  # rendering needs no data: the scratch server's maintenance database will do
        parts += _render(ctx, cfg, runner, admin, current, head, details, files, facts)
        rendered = True
    own: str | None = None
    if "backup_drill" in ctx.peers.running:
        ctx.say("waiting for the backup drill's restored copy")
        lent = ctx.peers.wait(PROD_COPY, ctx.remaining(0))
        if not lent:
            return [*parts, (Status.FAIL, NO_DRILL_COPY)]
        copy_url = lent["url"]
    elif admin:
        ctx.say("making a prod copy (pg_dump | pg_restore)")
        try:
            own, copy_url = _own_copy(ctx, target, admin)
        except (pgdump.PgError, pgdump.psycopg.Error) as e:
            return [*parts, (Status.FAIL,
                             f"cannot make a prod copy: {str(e).splitlines()[0][:200]}")]
    else:
        return [*parts, (Status.FAIL, NO_SCRATCH)]
    ctx.add_secret("migration_check.copy_url", copy_url)
    try:
        if not rendered:
            parts += _render(ctx, cfg, runner, copy_url, current, head, details, files, facts)
        parts.append(_upgrade_on_copy(ctx, cfg, runner, copy_url, head, details, facts))
        return parts
    finally:
        if own:
            pgdump.drop_scratch(admin, own)


NO_DRILL_COPY = "no prod copy to upgrade: the backup drill did not restore one"
NO_SCRATCH = ("no prod copy to upgrade: set [preflight.migration_check] scratch_url or run it "
              "with the backup drill")


def _upgrade_on_copy(ctx: CheckContext, cfg: MigrationCheckConfig, runner: Any,
                     copy_url: str, head: str, details: list[str], facts: dict
                     ) -> tuple[Status, str]:
    t0 = ctx.clock()
    try:
        runner.upgrade(copy_url, timeout=ctx.remaining())
    except alembic_cli.AlembicError as e:
        details.append(str(e))
        return Status.FAIL, (f"upgrade head FAILED on the prod copy: "
                             f"{str(e).strip().splitlines()[-1][:200]}")
    took = ctx.clock() - t0
    after = alembic_cli.current(copy_url, version_table=cfg.version_table,
                                schema=cfg.version_table_schema)
    facts["migration_upgrade_seconds"] = round(took, 2)
    details.append(f"upgrade head on the prod copy: {took:.1f} s, now at {after}")
    if after != head:
        return Status.FAIL, (f"after upgrade head the prod copy is at {after}, not {head} "
                             f"(does env.py read its URL from [preflight.migration_check] "
                             f"url_variable, and its version table from version_table?)")
    return Status.OK, f"upgrade on prod copy OK in {took:.1f} s"
