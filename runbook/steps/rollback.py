"""Rollback kinds: revert the deploy, undo migrations, verify login and read-only pages."""

from __future__ import annotations

import dataclasses

from runbook.adapters import stepkit
from runbook.adapters.docker import ImageInfo, short
from runbook.adapters.http import check_page, client, login_session
from runbook.adapters.migrations import validate_revision
from runbook.adapters.redact import tail
from runbook.steps.base import StepContext, StepFailed, StepResult, step_kind
from runbook.steps.health import base_url, health_checks, run_checks
from runbook.steps.restore import restore_snapshot


@step_kind("rollback.revert_deploy",
           description="Run each service on the image it ran before the deploy")
@stepkit.masked_step
def revert_deploy(ctx: StepContext) -> StepResult:
    recorded = ctx.facts.get("previous_images")
    if not recorded:
        raise StepFailed("nothing to revert: this run has no `previous_images` fact "
                         "(was the deploy step run?)")
    deployer = stepkit.make_deployer(ctx)
    if stepkit.is_kubernetes(ctx):
        return _revert_kubernetes(ctx, deployer, dict(recorded))
    managed = {s.service for s in deployer.cfg.services}
    previous = {svc: ImageInfo.from_fact(f) for svc, f in dict(recorded).items() if svc in managed}
    if not previous:
        raise StepFailed("nothing to revert: `previous_images` names no deployed service")
    ctx.progress("reverting to " + ", ".join(f"{s}={i.image}" for s, i in previous.items()))
    # Only the services deploy recorded, --no-deps (refused when compose would recreate others).
    brought = deployer.revert(previous, ctx.progress, timeout=min(
        deployer.cfg.up_timeout_s, stepkit.remaining_or_fail(ctx, "up")))
    now = deployer.current_images(deployer.wait_healthy(ctx.deadline, brought))  # one `ps --all`
    wrong = [f"{s}: runs {now[s].image if s in now else 'nothing'}" for s, i in previous.items()
             if s not in now or (i.image_id and now[s].image_id != i.image_id)]
    if wrong:
        raise StepFailed("revert did not take effect: " + "; ".join(wrong))
    lines = [f"{s}: back on {i.tag} (sha {short(i.revision, 7)})" for s, i in previous.items()]
    return StepResult(summary="; ".join(lines),
                      facts={"reverted_images": {s: now[s].as_fact() for s in previous}},
                      detail="\n".join(lines))


def _revert_kubernetes(ctx: StepContext, deployer, recorded: dict) -> StepResult:
    """Re-apply the manifests with the images recorded before the deploy; idempotent."""
    from runbook.adapters.kubernetes.deployer import key

    managed = {key(c) for c in deployer.cfg.containers}
    previous = {k: f for k, f in recorded.items() if k in managed and f.get("image")}
    if not previous:
        raise StepFailed("nothing to revert: `previous_images` names no release container")
    ctx.progress("reverting to " + ", ".join(f"{k}={f['image']}" for k, f in previous.items()))
    names = deployer.apply({k: f["image"] for k, f in previous.items()}, ctx.progress)
    stepkit.remaining_or_fail(ctx, "the rollout")
    deployer.wait_rollout(names, min(ctx.deadline, ctx.clock() + deployer.cfg.rollout_timeout_s),
                          ctx.progress)
    now = deployer.current_images()
    wrong = [f"{k}: runs {now[k]['image'] if k in now else 'nothing'}"
             for k, f in previous.items() if k not in now or now[k]["image"] != f["image"]]
    if wrong:
        raise StepFailed("revert did not take effect: " + "; ".join(wrong))
    lines = [f"{k}: back on {f.get('tag')} (sha {short(f.get('revision'), 7)}, revision "
             f"{now[k].get('deployment_revision')})" for k, f in previous.items()]
    return StepResult(summary="; ".join(lines),
                      facts={"reverted_images": {k: now[k] for k in previous}},
                      detail="\n".join(lines))


@step_kind("rollback.data",
           description="Downgrade migrations to alembic_before, or restore the preflight snapshot")
@stepkit.masked_step
def data(ctx: StepContext) -> StepResult:
    strategy = str(ctx.params.get("strategy", "downgrade")).lower()
    if strategy == "restore":
        return restore_snapshot(ctx)
    if strategy != "downgrade":
        raise StepFailed(f"rollback.data strategy must be 'downgrade' or 'restore', "
                         f"got {strategy!r}")
    if "alembic_before" not in ctx.facts:
        raise StepFailed("no `alembic_before` fact: the migrate step did not record a revision")
    before = ctx.facts.get("alembic_before")
    goal = validate_revision(str(before)) if before else "base"
    target = stepkit.target_of(ctx)
    migrator = stepkit.make_migrator(ctx, target)
    now = migrator.current_revision()
    if (now or "base") == goal:
        return StepResult(summary=f"alembic already at {goal}; nothing to downgrade",
                          facts={"alembic_rolled_back_to": goal})
    ctx.progress(f"alembic downgrade {now} -> {goal}")
    output = migrator.downgrade(goal)
    after = migrator.current_revision()
    if (after or "base") != goal:
        raise StepFailed(f"after downgrade the database is at {after}, expected {goal}")
    return StepResult(summary=f"alembic downgraded: {now} -> {goal}",
                      facts={"alembic_rolled_back_to": goal}, detail=tail(output, 40, 3500))


@step_kind("rollback.verify_readonly",
           description="Health, admin login and read-only pages answer after the rollback")
@stepkit.masked_step
def verify_readonly(ctx: StepContext) -> StepResult:
    target = stepkit.target_of(ctx)
    base = base_url(ctx, target)
    # After a revert the old version runs: expect what previous_images says, not deployed_tag.
    facts = dict(ctx.facts)
    prev = facts.get("previous_images") or {}
    tags = {f.get("tag") for f in prev.values()} if prev else set()
    revs = {f.get("revision") for f in prev.values()} if prev else set()
    facts["deployed_tag"] = tags.pop() if len(tags) == 1 else None
    facts["deployed_revision"] = revs.pop() if len(revs) == 1 else None
    facts.pop("alembic_after", None)
    view = dataclasses.replace(ctx, facts=facts)
    paths = list(ctx.params.get("paths") or target.readonly_paths)
    login = target.admin_login
    with client(target.probe) as http:
        checks = health_checks(view, target, http, base)

        def page(path: str):
            def check() -> str:
                login_session(http, base, login, path, ctx.secrets)
                return check_page(http, base, path)
            return check

        checks += [(f"read-only {p}", page(p)) for p in paths]
        lines = run_checks(view, target, checks)
    return StepResult(summary="\n".join(lines), facts={"rollback_verified": True},
                      detail="\n".join(lines))
