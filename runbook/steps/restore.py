"""``rollback.data`` with ``strategy = "restore"``: put the preflight snapshot back.

Why in place (``pg_restore --clean`` inside one transaction) rather than restoring into a new
database and renaming it over the live one: on the sample stack the app connects as the role
that owns its database and has no CREATEDB, the app keeps connections open (a rename refuses
while anyone is connected, so a swap means killing sessions and racing reconnects), and
database-level settings and grants would have to be copied by hand. One transaction gives
the swap's one safety that matters, all or nothing, with the owner's rights only. The other
safety of a swap, keeping what the restore throws away, comes from dumping the database as
it is right before the restore (``keep_current``, on by default): payments written after the
snapshot must be reconciled, never silently lost.

Refuses without the snapshot facts the backup drill records, and when the file's sha256 is
not the recorded one. After the restore, every table's row count must equal the snapshot's.
Running it twice restores the same snapshot twice: the same state.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from runbook.adapters import pgdump, pgrestore, stepkit
from runbook.adapters.alembic_cli import current as alembic_current
from runbook.steps.base import StepContext, StepFailed, StepResult

SNAPSHOT_FACTS = ("snapshot_path", "snapshot_sha256", "snapshot_source_rows")


def _database_url(ctx: StepContext) -> str:
    target = stepkit.target_of(ctx)
    # Never from the step's params: those can carry a person's command arguments.
    url = (target.migrations.database_url.get_secret_value()
           if target.migrations.database_url else "")
    if not url:
        raise StepFailed("strategy restore needs the target database: set [target.migrations] "
                         "database_url")
    return url


def _checked_snapshot(ctx: StepContext) -> tuple[Path, str, dict[str, int]]:
    missing = [k for k in SNAPSHOT_FACTS if not ctx.facts.get(k)]
    if missing:
        raise StepFailed("no preflight snapshot recorded for this run (missing "
                         + ", ".join(f"`{k}`" for k in missing) + "): run the backup drill "
                         "(/golive preflight) or roll back with strategy downgrade; "
                         "nothing was restored")
    path = Path(str(ctx.facts["snapshot_path"]))
    want = str(ctx.facts["snapshot_sha256"]).lower()
    if not path.is_file():
        raise StepFailed(f"the preflight snapshot {path} is gone; nothing was restored")
    ctx.progress(f"checking sha256 of {path.name}")
    got, size = pgdump.file_digest(path)
    if got != want:
        raise StepFailed(f"refusing to restore {path.name}: its sha256 is {got[:16]}…, the "
                         f"backup drill recorded {want[:16]}… (the file changed after the "
                         f"drill); nothing was restored")
    recorded_size = ctx.facts.get("snapshot_size")
    if recorded_size is not None and int(recorded_size) != size:
        raise StepFailed(f"refusing to restore {path.name}: {size} bytes, the drill recorded "
                         f"{recorded_size}; nothing was restored")
    rows = {str(k): int(v) for k, v in dict(ctx.facts["snapshot_source_rows"]).items()}
    return path, got, rows


def _keep_current(ctx: StepContext, url: str, snapshot: Path) -> tuple[str, dict[str, int]]:
    """Dump the database as it is now beside the snapshot; (path, row counts)."""
    dbname = pgdump.urlsplit(pgdump.plain_url(url)).path.strip("/") or "db"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"pre-restore-{dbname}-run{ctx.run_id}-{stamp}")
    path = snapshot.parent / f"{name}.dump"
    ctx.progress(f"keeping the current data: pg_dump to {path.name}")
    figures = pgdump.dump_with_figures(url, path, [], timeout=stepkit.remaining_or_fail(
        ctx, "the pre-restore dump"), bin_dir=_bin_dir(ctx))
    return str(path), dict(figures.counts)


def _bin_dir(ctx: StepContext) -> Path | None:
    v = ctx.params.get("pg_bin_dir")
    return Path(str(v)) if v else None


def restore_snapshot(ctx: StepContext) -> StepResult:
    """Verify the snapshot file, keep the current data, restore, then compare row counts."""
    path, sha, want = _checked_snapshot(ctx)
    url = _database_url(ctx)
    facts: dict[str, object] = {}
    try:
        before: dict[str, int] = {}
        if stepkit.param_bool(ctx, "keep_current", True):
            kept, before = _keep_current(ctx, url, path)
            facts["pre_restore_dump"] = kept
        live = pgrestore.user_tables(url)
        extra = [(s, t) for s, t in live if pgrestore.label(s, t) not in want]
        if extra:
            ctx.progress("dropping tables created after the snapshot: "
                         + ", ".join(pgrestore.label(s, t) for s, t in extra))
        taken = ctx.facts.get("snapshot_taken_at") or "an unknown time"
        ctx.progress(f"restoring {path.name} (taken {taken}) in one transaction")
        pgrestore.restore_over(path, url, drop_first=extra, bin_dir=_bin_dir(ctx),
                               timeout=stepkit.remaining_or_fail(ctx, "the restore"))
        after = pgdump.restored_figures(url, []).counts
        mig = stepkit.target_of(ctx).migrations
        revision = alembic_current(url, version_table=mig.version_table,
                                   schema=mig.version_table_schema)
    except (pgdump.PgError, pgdump.psycopg.Error) as e:
        raise StepFailed(f"restore failed: {_first(e)}", facts=facts) from None
    wrong = [f"{t}: {after.get(t, 'missing')} rows, the snapshot has "
             f"{want.get(t, 'no such table')}" for t in sorted(set(want) | set(after)) if after.get(t) != want.get(t)]
    facts.update({"data_restored_from": sha, "alembic_rolled_back_to": revision or "base"})
    if wrong:
        raise StepFailed("the snapshot was restored but does not match it: " + "; ".join(wrong)
                         + " — the database is in the restored state; check it by hand",
                         facts=facts)
    lost = [f"{t}: {before[t]} -> {n}" for t, n in sorted(want.items())
            if t in before and before[t] != n]
    lines = [f"restored {path.name} (sha256 {sha[:12]}, taken {taken})",
             (f"{len(want)} tables, {sum(want.values())} rows match the snapshot; "
             f"alembic at {revision or 'base'}")]
    if extra:
        lines.append("dropped (created after the snapshot): "
                     + ", ".join(pgrestore.label(s, t) for s, t in extra))
    if lost:
        lines.append("row counts changed by the restore: " + "; ".join(lost))
    if "pre_restore_dump" in facts:
        lines.append(f"the data as it was before the restore is kept in "
                     f"{facts['pre_restore_dump']}")
    return StepResult(summary=f"snapshot restored: {len(want)} tables, {sum(want.values())} rows "
                              f"match; alembic at {revision or 'base'}",
                      facts=facts, detail="\n".join(lines))


def _first(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:400]
