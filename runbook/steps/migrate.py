"""``migrate``: ``alembic upgrade head`` on the target database, revisions recorded.

Every alembic call (``current`` before and after, ``upgrade``, ``heads``) is the one configured
invocation (``[target.migrations] command``), the same one the rollback's downgrade uses;
revisions come from the project's version table."""

from __future__ import annotations

from runbook.adapters import stepkit
from runbook.adapters.migrations import validate_revision
from runbook.adapters.redact import tail
from runbook.steps.base import StepContext, StepFailed, StepResult, step_kind


@step_kind("migrate", description="alembic upgrade head (param target), before/after recorded")
@stepkit.masked_step
def run(ctx: StepContext) -> StepResult:
    target = stepkit.target_of(ctx)
    goal = validate_revision(str(ctx.params.get("target", "head")))
    migrator = stepkit.make_migrator(ctx, target)
    one_run = getattr(migrator, "upgrade_reporting", None)
    report = None
    if one_run is not None:
        ctx.progress(f"{' '.join(target.migrations.command)} upgrade {goal} in one "
                     f"{target.migrations.service} container")
        report = one_run(goal)
    if report is not None:
        return _result(goal, report.before, report.after, report.heads, report.output)
    ctx.progress(f"reading the current alembic revision ({target.migrations.mode})")
    before = migrator.current_revision()
    ctx.progress(f"alembic revision now: {before or 'empty database'}; upgrading to {goal}")
    try:
        output = migrator.upgrade(goal)
        after = migrator.current_revision()
    except StepFailed as e:
        raise StepFailed(e.message, facts={"alembic_before": before}) from None
    return _result(goal, before, after, migrator.heads() if goal == "head" else [], output)


def _result(goal: str, before: str | None, after: str | None, heads: list[str],
            output: str) -> StepResult:
    if goal == "head" and heads and after not in heads and after != ",".join(heads):
        raise StepFailed(f"after upgrade the database is at {after}, not at head "
                         f"({', '.join(heads)})", facts={"alembic_before": before})
    changed = "unchanged" if before == after else "upgraded"
    return StepResult(
        summary=f"alembic {changed}: {before or 'base'} -> {after or 'base'}",
        facts={"alembic_before": before, "alembic_after": after},
        detail=tail(output, 40, 3500),
    )
