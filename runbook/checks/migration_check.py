"""Check 4, migrations: current vs head, the offline SQL (attached, linted with squawk) and a
real ``upgrade head`` on the prod copy the backup drill restored.

Run alone (``/golive preflight migration_check``), it makes its own copy with pg_dump and
pg_restore. squawk findings are warnings: they show what the migration will lock or break.
"""

from __future__ import annotations

from runbook.adapters import alembic_cli, pgdump, squawk
from runbook.checks.backup_drill import PROD_COPY, PROD_COPY_DONE
from runbook.checks.base import CheckContext, CheckFailed, CheckResult, Status, worst
from runbook.checks.config import MigrationCheckConfig

NAME = "migration_check"


def run(ctx: CheckContext) -> CheckResult:
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


def _run(ctx: CheckContext) -> CheckResult:
    cfg: MigrationCheckConfig = ctx.require_config(NAME)
    target, admin = _urls(ctx, cfg)
    ctx.add_secret("migration_check.database_url", target)
    ctx.add_secret("migration_check.scratch_url", admin)
    details: list[str] = []
    parts: list[tuple[Status, str]] = []
    files: dict[str, str] = {}
    try:
        heads = alembic_cli.heads(cfg.script_location)
        known = alembic_cli.known_revisions(cfg.script_location)
    except alembic_cli.AlembicError as e:
        raise CheckFailed(f"{e} (check [preflight.migration_check] script_location)") from None
    head = ",".join(sorted(heads))
    try:
        current = alembic_cli.current(target, timeout=min(10.0, ctx.remaining()))
    except pgdump.psycopg.Error as e:
        raise CheckFailed(f"cannot read the target database's alembic revision: "
                          f"{str(e).strip().splitlines()[0][:200]}") from None
    facts = {"alembic_current": current, "alembic_head": head}
    details.append(f"alembic current {current or '(empty database)'}, head {head}")
    if len(heads) != 1:
        parts.append((Status.FAIL, f"the migrations have {len(heads)} heads ({head}): merge them"))
    if current and any(r not in known for r in current.split(",")):
        raise CheckFailed(f"the database is at {current}, which the RC's migrations do not know "
                          "(is the database ahead of this release?)", details=details,
                          facts=facts)
    pending = current != head
    # Offline SQL of what will run, attached and linted.
    try:
        sql = alembic_cli.offline_sql(cfg.script_location, target, current,
                                      timeout=ctx.remaining())
    except alembic_cli.AlembicError as e:
        raise CheckFailed(f"dry run failed: {str(e).splitlines()[0]}", details=details + [str(e)],
                          facts=facts) from None
    if pending:
        files[f"migration-{current or 'base'}-to-{head}.sql"] = sql
        details.append(f"dry run: {len(sql.splitlines())} lines of SQL (attached)")
    if cfg.lint and pending:
        try:
            findings = squawk.lint(sql, binary=cfg.squawk, exclude=cfg.squawk_exclude,
                                   pg_version=cfg.pg_version, timeout=min(30.0, ctx.remaining()))
        except squawk.SquawkError as e:
            parts.append((Status.WARN, f"lint did not run: {e}"))
        else:
            details += [f"⚠️ {f}" for f in findings]
            facts["squawk_findings"] = len(findings)
            if findings:
                rules = sorted({f.rule for f in findings})
                parts.append((Status.WARN, (f"squawk: {len(findings)} finding(s) "
                              f"({', '.join(rules)})")))
    # A real upgrade on the prod copy.
    if pending:
        parts.append(_upgrade_on_copy(ctx, cfg, target, admin, head, details, facts))
    status = worst([s for s, _ in parts] or [Status.OK])
    lead = (f"{current or 'base'} → {head} pending" if pending else f"at head {head}")
    shown = [f for s, f in parts if s != Status.OK] or [f for _, f in parts]
    return CheckResult(NAME, status, "; ".join([lead, *shown]), details, files, facts)


def _upgrade_on_copy(ctx: CheckContext, cfg: MigrationCheckConfig, target: str,
                     admin: str | None, head: str, details: list[str], facts: dict
                     ) -> tuple[Status, str]:
    own: str | None = None
    if "backup_drill" in ctx.peers.running:
        ctx.say("waiting for the backup drill's restored copy")
        lent = ctx.peers.wait(PROD_COPY, ctx.remaining(0))
        if not lent:
            return Status.FAIL, "no prod copy to upgrade: the backup drill did not restore one"
        copy_url = lent["url"]
    elif admin:
        ctx.say("making a prod copy (pg_dump | pg_restore)")
        try:
            own, copy_url = _own_copy(ctx, target, admin)
        except (pgdump.PgError, pgdump.psycopg.Error) as e:
            return Status.FAIL, f"cannot make a prod copy: {str(e).splitlines()[0][:200]}"
    else:
        return Status.FAIL, ("no prod copy to upgrade: set [preflight.migration_check] "
                             "scratch_url or run it with the backup drill")
    ctx.add_secret("migration_check.copy_url", copy_url)
    try:
        t0 = ctx.clock()
        try:
            alembic_cli.upgrade(cfg.script_location, copy_url, timeout=ctx.remaining())
        except alembic_cli.AlembicError as e:
            details.append(str(e))
            return Status.FAIL, (f"upgrade head FAILED on the prod copy: " \
                                f"{str(e).strip().splitlines()[-1][:200]}")
        took = ctx.clock() - t0
        after = alembic_cli.current(copy_url)
        facts["migration_upgrade_seconds"] = round(took, 2)
        details.append(f"upgrade head on the prod copy: {took:.1f} s, now at {after}")
        if after != head:
            return Status.FAIL, f"after upgrade head the prod copy is at {after}, not {head}"
        return Status.OK, f"upgrade on prod copy OK in {took:.1f} s"
    finally:
        if own:
            pgdump.drop_scratch(admin, own)

