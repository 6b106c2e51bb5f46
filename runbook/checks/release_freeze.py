"""Check 1, release freeze: the RC tag resolves to the run's commit, the image to deploy
carries that commit as its revision label, and nobody can push to the main branch right now.

``source = "github"`` reads the tag, branch protection and rulesets from GitHub's API;
``source = "git"`` reads the tag from any repository ``git ls-remote`` can read (a local path or
a URL) and shows the branch lock as not applicable: a plain git server has none to read.

Locked means: classic protection with both ``lock_branch`` and ``enforce_admins``, or an active
ruleset ``update`` rule whose ruleset has no bypass actors. ``restrictions`` alone does not
count (admins can still push); a 404 is unknown, never a pass.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from runbook.adapters import gitrepo
from runbook.adapters.github import GitHub, GitHubError, TagTarget
from runbook.adapters.registry import RegistryError, image_revision
from runbook.checks.base import CheckContext, CheckFailed, PreflightResult, Status, worst
from runbook.checks.sections.release_freeze import ReleaseFreezeConfig

NAME = "release_freeze"
_FULL_SHA = re.compile(r"^[0-9a-f]{40}$")


def _enabled(protection: dict, key: str) -> bool:
    return bool((protection.get(key) or {}).get("enabled"))


def branch_locked(gh: GitHub, branch: str) -> tuple[Status, str, list[str]]:
    """Whether ``branch`` is locked for everyone: (status, finding, details)."""
    details: list[str] = []
    why: list[str] = []
    protection = gh.branch_protection(branch)
    if protection is not None:
        lock, admins = _enabled(protection, "lock_branch"), _enabled(protection, "enforce_admins")
        details.append(f"classic protection on {branch}: lock_branch={lock}, "
                       f"enforce_admins={admins}, restrictions="
                       f"{'set' if protection.get('restrictions') else 'none'}")
        if lock and admins:
            return Status.OK, f"{branch} locked (lock_branch + enforce_admins)", details
        why.append("lock_branch and enforce_admins are not both on")
    else:
        details.append(f"classic protection on {branch}: 404 (not protected, or the token is "
                       "not a repository admin)")
    rules = [r for r in gh.branch_rules(branch) if r.get("type") == "update"]
    unreadable = False
    for rule in rules:
        rid = rule.get("ruleset_id")
        ruleset = gh.ruleset(rid) if rid is not None else None
        if ruleset is None:
            unreadable = True
            details.append(f"ruleset {rid}: not readable (the token needs admin to see its "
                           "bypass actors)")
            continue
        name, bypass = ruleset.get("name", rid), ruleset.get("bypass_actors")
        active = ruleset.get("enforcement") == "active"
        details.append(f"ruleset {rid} ({name}): update rule, enforcement="
                       f"{ruleset.get('enforcement')}, bypass actors="
                       f"{'unknown' if bypass is None else len(bypass)}")
        if active and bypass == []:
            return Status.OK, f"{branch} locked (ruleset {name}: update rule, no bypass)", details
        if bypass is None:
            unreadable = True
        else:
            why.append(f"ruleset {name} " + ("has bypass actors" if bypass else "is not active"))
    if protection is None and (not rules or unreadable) and not why:
        return (Status.UNKNOWN, (f"cannot tell whether {branch} is locked: its protection answers "
                "404 and no readable ruleset update rule applies (use an admin token, or lock "
                "it)"), details)
    if not why:
        why.append("no lock_branch protection and no ruleset update rule")
    return Status.FAIL, (f"{branch} is NOT locked: {'; '.join(why)} (lock it before the " \
                        "cutover)"), details


def _pinned(ctx: CheckContext, target: TagTarget, facts: dict[str, str], details: list[str]
            ) -> tuple[Status, str]:
    """Whether the run's pinned SHA is the tag's commit."""
    sha = target.commit_sha.lower()
    facts["rc_sha"] = sha
    kind = f"annotated tag ({len(target.chain)} tag object(s))" if target.annotated \
        else "lightweight tag"
    details.append(f"{ctx.rc_tag}: {kind} -> commit {sha}")
    ctx.say(f"{ctx.rc_tag} resolves to {sha[:12]}")
    pinned = (ctx.rc_sha or "").lower()
    if not pinned:
        return Status.FAIL, (f"the run pins no RC SHA; {ctx.rc_tag} is {sha[:12]} (start the "
                             "run with the full SHA)")
    if not _FULL_SHA.match(pinned):
        return Status.FAIL, (f"the run pins {pinned!r}, not a full 40-character SHA; "
                             f"{ctx.rc_tag} is {sha}")
    if pinned != sha:
        return Status.FAIL, (f"{ctx.rc_tag} is {sha[:12]}, but the run pins {pinned[:12]} (the "
                             "tag moved, or the run has the wrong SHA)")
    return Status.OK, f"{ctx.rc_tag} = {sha[:12]}"


def _image(ctx: CheckContext, cfg: ReleaseFreezeConfig, facts: dict[str, str],
           details: list[str]) -> tuple[Status, str] | None:
    """Whether the RC image's revision label is the tag's commit (None: not configured)."""
    if not cfg.image:
        details.append("image label: not checked ([preflight.release_freeze] image unset)")
        return None
    image = cfg.image.replace("{tag}", ctx.rc_tag or "")
    facts["rc_image"] = image
    token = cfg.registry_token.get_secret_value() if cfg.registry_token else None
    ctx.add_secret("release_freeze.registry_token", token)
    try:
        rev = image_revision(image, scheme=cfg.registry_scheme,
                             timeout=min(10.0, ctx.remaining()), token=token)
    except RegistryError as e:
        return Status.FAIL, f"{e} (push the RC image, or fix [preflight.release_freeze] image)"
    details.append(f"{image}: revision label {rev or '(none)'}")
    want = facts.get("rc_sha") or (ctx.rc_sha or "").lower()
    if not rev:
        return Status.FAIL, f"{image} has no org.opencontainers.image.revision label"
    if rev.lower() != want:
        return Status.FAIL, (f"{image} was built from {rev[:12]}, not the RC commit "
                             f"{want[:12] or '?'}")
    return Status.OK, "image label matches"


def _from_git(ctx: CheckContext, cfg: ReleaseFreezeConfig, parts: list[tuple[Status, str]],
              details: list[str], facts: dict[str, str]) -> None:
    url = cfg.git_url or ""
    try:
        ctx.add_secret("release_freeze.git_password", urlsplit(url).password)
    except ValueError:
        pass
    try:
        target = gitrepo.resolve_tag(url, ctx.rc_tag or "", timeout=min(30.0, ctx.remaining()))
    except gitrepo.GitError as e:
        parts.append((Status.FAIL, f"{e} (check [preflight.release_freeze] git_url)"))
    else:
        parts.append(_pinned(ctx, target, facts, details))
    image = _image(ctx, cfg, facts, details)
    if image:
        parts.append(image)
    parts.append((Status.OK, ("branch protection not applicable (source = \"git\": only "
                  "GitHub's is read)")))
    details.append("branch lock: not applicable for a plain git repository (source = \"git\")")


def _from_github(ctx: CheckContext, cfg: ReleaseFreezeConfig,
                 parts: list[tuple[Status, str]], details: list[str],
                 facts: dict[str, str]) -> None:
    token = cfg.token.get_secret_value() if cfg.token else None
    ctx.add_secret("github_token", token)
    gh = GitHub(cfg.api_url, cfg.repo or "", token=token, api_version=cfg.api_version,
                timeout=min(10.0, ctx.remaining()),
                max_wait_s=min(cfg.max_rate_limit_wait_s, ctx.remaining(0)))
    try:
        try:
            target = gh.resolve_tag(ctx.rc_tag or "")
        except GitHubError as e:
            if e.status == 0:
                raise CheckFailed(f"{e} (check [preflight.release_freeze] api_url and the "
                                  "network)") from None
            parts.append((Status.FAIL, str(e)))
        else:
            parts.append(_pinned(ctx, target, facts, details))
        image = _image(ctx, cfg, facts, details)
        if image:
            parts.append(image)
        try:
            status, finding, lock_details = branch_locked(gh, cfg.branch)
        except GitHubError as e:
            status, finding, lock_details = (Status.UNKNOWN,
                                             f"cannot read {cfg.branch}'s protection: {e}", [])
        details += lock_details
        parts.append((status, finding))
    finally:
        gh.close()


def run(ctx: CheckContext) -> PreflightResult:
    """Check the RC tag's commit, the image's revision label and (GitHub) the branch lock."""
    cfg: ReleaseFreezeConfig = ctx.require_config(NAME)
    if not ctx.rc_tag:
        raise CheckFailed("the run has no RC tag: start it with /golive start <rc-tag> <sha>")
    parts: list[tuple[Status, str]] = []
    details: list[str] = []
    facts: dict[str, str] = {"rc_tag": ctx.rc_tag}
    (_from_git if cfg.source == "git" else _from_github)(ctx, cfg, parts, details, facts)
    status = worst([s for s, _ in parts])
    shown = [f for s, f in parts if s == status] if status != Status.OK else [f for _, f in parts]
    return PreflightResult(NAME, status, "; ".join(shown), details, facts=facts)
