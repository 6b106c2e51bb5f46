"""Check 3, DB backup and restore drill (the team's ``scripts/db_restore_drill.sh``).

Snapshot the source with ``pg_dump -Fc`` (or the configured command), record size and sha256,
restore into a scratch database, and compare per-table row counts and the ledger tables' md5s
with the source's figures taken on the dump's own snapshot. The restored copy is lent to the
migration check ("on prod copy") when it runs in the same preflight, then dropped.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from runbook.adapters import pgdump
from runbook.checks.base import CheckContext, CheckFailed, PreflightResult, Status
from runbook.checks.sections.backup_drill import BackupDrillConfig

NAME = "backup_drill"
PROD_COPY = "prod_copy"
PROD_COPY_DONE = "prod_copy_done"


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _prune(directory: Path, stem: str, keep: int) -> None:
    old = sorted(directory.glob(f"{stem}-*.dump"), key=lambda p: p.stat().st_mtime)
    for p in old[:-keep]:
        p.unlink(missing_ok=True)


def run(ctx: CheckContext) -> PreflightResult:
    """Snapshot, restore into a scratch database, compare; lend the copy, then drop it."""
    lent = False
    try:
        cfg: BackupDrillConfig = ctx.require_config(NAME)
        src_url, admin_url = cfg.database_url.get_secret_value(), cfg.scratch_url.get_secret_value()
        ctx.add_secret("backup_drill.database_url", src_url)
        ctx.add_secret("backup_drill.scratch_url", admin_url)
        dbname = pgdump.urlsplit(pgdump.plain_url(src_url)).path.strip("/") or "db"
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{dbname}-{ctx.rc_tag or 'rc'}")
        taken_at = datetime.now(UTC)
        try:
            cfg.snapshot_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CheckFailed(f"cannot create snapshot_dir {cfg.snapshot_dir}: {e.strerror}"
                              ) from None
        path = cfg.snapshot_dir / f"{stem}-{taken_at:%Y%m%dT%H%M%SZ}.dump"
        details: list[str] = []
        t0 = ctx.clock()
        try:
            if cfg.snapshot_command:
                ctx.say("running the snapshot command")
                pgdump.run_snapshot_command(cfg.snapshot_command, path, src_url,
                                            timeout=ctx.remaining())
                source = pgdump.source_figures(src_url, cfg.ledger_tables)
                details.append("snapshot taken by the configured command; source figures read "
                               "right after it (not on the dump's own snapshot)")
            else:
                ctx.say("pg_dump --format=custom on an exported snapshot")
                source = pgdump.dump_with_figures(src_url, path, cfg.ledger_tables,
                                                  timeout=ctx.remaining(), bin_dir=cfg.pg_bin_dir)
        except (pgdump.PgError, pgdump.psycopg.Error) as e:
            raise CheckFailed(f"snapshot failed: {_first(e)}") from None
        dump_s = ctx.clock() - t0
        sha, size = pgdump.file_digest(path)
        facts = {"snapshot_path": str(path), "snapshot_sha256": sha, "snapshot_size": size,
                 "snapshot_taken_at": taken_at.isoformat(timespec="seconds"),
                 "snapshot_source_rows": dict(source.counts)}
        details.append(f"snapshot {path} ({_human(size)}, sha256 {sha}) in {dump_s:.1f} s")
        ctx.say(f"snapshot {_human(size)} taken; restoring into a scratch database")
        try:
            name, scratch = pgdump.create_scratch(admin_url)
        except pgdump.psycopg.Error as e:
            raise CheckFailed(f"cannot create the scratch database (check [preflight."
                              f"backup_drill] scratch_url): {_first(e)}", facts=facts) from None
        try:
            t1 = ctx.clock()
            try:
                pgdump.restore(path, scratch, timeout=ctx.remaining(), bin_dir=cfg.pg_bin_dir)
                restored = pgdump.restored_figures(scratch, cfg.ledger_tables)
            except (pgdump.PgError, pgdump.psycopg.Error) as e:
                raise CheckFailed(f"the snapshot does not restore: {_first(e)} (the backup is "
                                  f"corrupt or incomplete: {path.name})", details=details,
                                  facts=facts) from None
            restore_s = ctx.clock() - t1
            facts["restore_seconds"] = round(restore_s, 2)
            diffs = source.diff(restored)
            rows = sum(source.counts.values())
            details.append(f"restored into {name} in {restore_s:.1f} s")
            details += [f"{t}: {n} rows" + (f", md5 {source.md5[t][:12]}" if t in source.md5
                                            else "") for t, n in source.counts.items()]
            if diffs:
                details += ["mismatch: " + d for d in diffs]
                return PreflightResult(NAME, Status.FAIL, f"restore does not match the source: "
                                   f"{diffs[0]}" + (f" (+{len(diffs) - 1} more)"
                                                    if len(diffs) > 1 else ""), details,
                                   facts=facts)
            if "migration_check" in ctx.peers.running:
                ctx.peers.publish(PROD_COPY, {"url": scratch, "name": name})
                lent = True
                ctx.say("restored copy lent to the migration check")
                ctx.peers.wait(PROD_COPY_DONE, ctx.remaining(0) - 5)
        finally:
            try:
                pgdump.drop_scratch(admin_url, name)
            except pgdump.psycopg.Error as e:
                details.append(f"could not drop the scratch database {name}: {_first(e)}")
        _prune(cfg.snapshot_dir, stem, cfg.keep_snapshots)
        return PreflightResult(NAME, Status.OK,
                           f"snapshot {_human(size)} sha256 {sha[:12]}; restored in "
                           f"{restore_s:.1f} s; {len(source.counts)} tables, {rows} rows"
                           + (f" and {len(source.md5)} ledger md5s match" if source.md5 else
                              " match (row counts only: no ledger_tables to compare by md5)"),
                           details, facts=facts)
    finally:
        if not lent:
            ctx.peers.publish(PROD_COPY, None)


def _first(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
