"""``deploy``: pull the release images, check their revision, bring the stack up on them."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from runbook.adapters import stepkit
from runbook.adapters.docker import ImageInfo, short
from runbook.docker_ref import validate_tag
from runbook.steps.base import StepContext, StepFailed, StepResult, step_kind


def same_revision(a: str, b: str) -> bool:
    """Full or abbreviated (>= 7 hex digits) commit shas naming the same commit."""
    a, b = a.strip().lower(), b.strip().lower()
    n = min(len(a), len(b))
    return n >= 7 and a[:n] == b[:n]


def _facts(images: dict[str, ImageInfo]) -> dict[str, dict]:
    return {svc: info.as_fact() for svc, info in images.items()}


def _check_revisions(ctx: StepContext, pulled: dict[str, ImageInfo]) -> None:
    """Every pulled image carries the signed-off RC's commit in its revision label."""
    rc_sha = ctx.facts.get("rc_sha")
    for info in pulled.values():
        if rc_sha and not info.revision:
            raise StepFailed(f"{info.image} has no {'org.opencontainers.image.revision'} label; "
                             f"cannot check it against the RC sha {short(str(rc_sha))}")
        if rc_sha and not same_revision(info.revision or "", str(rc_sha)):
            raise StepFailed(
                f"{info.image} was built from {short(info.revision)}, but the signed-off RC is "
                f"{short(str(rc_sha))}; not deploying"
            )
    if rc_sha:
        ctx.progress(f"revision label matches the RC sha {short(str(rc_sha))}")


@step_kind("deploy", description="Pull the release tag, verify its revision, compose up the "
           "services that take it (--no-deps), wait healthy")
@stepkit.masked_step
def run(ctx: StepContext) -> StepResult:
    raw_tag = ctx.params.get("tag")
    if raw_tag in (None, ""):
        raise StepFailed("deploy needs an image tag, e.g. `/golive deploy v2`")
    try:
        tag = validate_tag(str(raw_tag))
    except ValueError as e:
        raise StepFailed(f"refusing to deploy: {e}") from None

    if stepkit.is_kubernetes(ctx):
        return _deploy_kubernetes(ctx, tag)
    deployer = stepkit.make_deployer(ctx)
    deployer.require_passthrough()  # before the pull: nothing to wait for if it would refuse
    cfg = deployer.cfg
    images = {svc.service: cfg.image(svc, tag) for svc in cfg.services}
    ctx.progress(f"pulling {len(images)} image(s) for tag {tag} from {cfg.registry}")
    # What runs now (the revert target) is read while the images pull: a pull changes no
    # container, and `compose ps` costs as long as a small pull. Its answer (or failure)
    # counts only after the pull and the revision check, in the order they always came.
    with ThreadPoolExecutor(1, thread_name_prefix="deploy-ps") as pool:
        running = pool.submit(deployer.current_images)
        deployer.pull(list(images.values()), ctx.progress)
        pulled = {svc: deployer.image_info(ref) for svc, ref in images.items()}
        _check_revisions(ctx, pulled)
        previous = {s: i for s, i in running.result().items() if s in images}
    keep = {"previous_images": _facts(previous)}
    before = ", ".join(f"{s}={i.tag}" for s, i in previous.items() if s in images) or "nothing"
    ctx.progress(f"running now: {before}")
    try:
        # Only the services that take the release image, --no-deps; refused before anything
        # changes when compose would recreate another one the config does not allow.
        brought = deployer.up(deployer.tag_env(tag), ctx.progress, timeout=min(
            cfg.up_timeout_s, stepkit.remaining_or_fail(ctx, "compose up")))
        # One `ps --all` says both: they are healthy, and which image each of them runs.
        now = deployer.current_images(deployer.wait_healthy(ctx.deadline, brought))
    except StepFailed as e:
        raise StepFailed(e.message, facts={**keep, **e.facts}) from None

    wrong = [
        f"{svc} runs {now[svc].image} ({short(now[svc].image_id, 19)}), expected "
        f"{info.image} ({short(info.image_id, 19)})"
        for svc, info in pulled.items()
        if svc not in now or (info.image_id and now[svc].image_id != info.image_id)
    ]
    if wrong:
        raise StepFailed("deploy did not take effect: " + "; ".join(wrong), facts=keep)

    revisions = {i.revision for i in pulled.values() if i.revision}
    revision = revisions.pop() if len(revisions) == 1 else None
    lines = [
        f"{svc}: {(previous[svc].tag if svc in previous else 'none')} -> {tag} "
        f"(sha {short(info.revision, 7)})"
        for svc, info in pulled.items()
    ]
    return StepResult(
        summary="; ".join(lines),
        facts={
            **keep,
            "deployed_images": _facts({svc: now[svc] for svc in pulled}),
            "deployed_tag": tag,
            "deployed_revision": revision,
        },
        detail="\n".join(lines),
    )


def _deploy_kubernetes(ctx: StepContext, tag: str) -> StepResult:
    """Resolve the tag's digest, check its revision, server-side apply the manifests with it,
    wait for every Deployment's rollout; what ran before is recorded for the revert."""
    deployer = stepkit.make_deployer(ctx)
    cfg = deployer.cfg
    ctx.progress(f"resolving {tag} in {cfg.registry} (the cluster gets it by digest)")
    pulled = deployer.resolve(tag, ctx.progress)  # "deployment/container" -> ImageInfo
    _check_revisions(ctx, pulled)
    previous = deployer.previous_images(pulled, ctx.progress)
    keep = {"previous_images": previous}
    before = ", ".join(f"{k}={f.get('tag')}" for k, f in previous.items()) or "nothing"
    ctx.progress(f"running now: {before}")
    try:
        names = deployer.apply({k: i.image for k, i in pulled.items()}, ctx.progress)
        stepkit.remaining_or_fail(ctx, "the rollout")
        deployer.wait_rollout(names, min(ctx.deadline, ctx.clock() + cfg.rollout_timeout_s),
                              ctx.progress)
        now = deployer.current_images()
    except StepFailed as e:
        raise StepFailed(e.message, facts={**keep, **e.facts}) from None
    wrong = [f"{k} runs {now[k]['image'] if k in now else 'nothing'}, expected {i.image}"
             for k, i in pulled.items() if k not in now or now[k]["image"] != i.image]
    if wrong:
        raise StepFailed("deploy did not take effect: " + "; ".join(wrong), facts=keep)
    revisions = {i.revision for i in pulled.values() if i.revision}
    lines = [f"{k}: {(previous[k].get('tag') if k in previous else 'none')} -> {tag} "
             f"({short(i.image_id, 19)}, sha {short(i.revision, 7)}, revision "
             f"{now[k].get('deployment_revision')})" for k, i in pulled.items()]
    return StepResult(
        summary="; ".join(lines),
        facts={**keep, "deployed_images": {k: now[k] for k in pulled}, "deployed_tag": tag,
               "deployed_revision": revisions.pop() if len(revisions) == 1 else None},
        detail="\n".join(lines))
