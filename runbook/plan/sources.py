"""Fill the plan from the real systems, changing nothing.

Every value comes from the team's config (``TargetConfig``) and the systems it names: the
registry (each release image's manifest digest now), the compose project (what runs now, and
``docker compose config`` with today's tag vs the RC's tag) or the Kubernetes Deployments
(what runs now), the target database (its alembic revision: one SELECT) and the RC image
(``alembic history`` and ``alembic upgrade current:head --sql``, with a placeholder URL: the
offline SQL needs only the dialect, so no database URL is handed to the image), and squawk.
Whatever cannot be found out becomes an :class:`Unresolved` entry with why; nothing raises.
Secret values are masked before they reach the plan (``mask``), environment values are never
read into it: only their keys, and whether the value changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runbook.adapters.redact import mask
from runbook.model import Runbook, Step
from runbook.plan.model import (
    FieldChange,
    MigrationPlan,
    Plan,
    PlanCheck,
    ServiceChange,
    StepPlan,
    Unresolved,
    with_durations,
)
from runbook.target import (
    CommandSwitch,
    ComposeDeployerConfig,
    ComposeServiceSwitch,
    HttpSwitch,
    KubernetesDeployerConfig,
    TargetConfig,
)

# The offline SQL needs a dialect, not a database: no URL of the bot's reaches the image.
OFFLINE_URL = "postgresql://golive-plan@offline.invalid:5432/plan"
_HISTORY_EDGE = re.compile(r"^\s*(?P<down>[0-9A-Za-z_]+|<base>)(?:\s*\([^)]*\))*\s*->\s*"
                           r"(?P<up>[0-9A-Za-z_]+)")


@dataclass
class PlanInputs:
    """What the plan is computed for, besides the runbook and the target."""

    rc_tag: str | None
    run_id: int | None = None
    run_facts: Mapping[str, Any] = field(default_factory=dict)
    """the run's facts (rc_sha, snapshot_taken_at, previous_images, ...)"""
    history: Mapping[str, Sequence[float]] = field(default_factory=dict)
    """step id -> durations (s) of its recorded successful attempts"""
    secrets: Mapping[str, str] = field(default_factory=dict)
    """extra secret values to mask (the target's own are added)"""
    url_variable: str | None = None
    """the env var the team's env.py reads its URL from, when [target.migrations] has none
    (e.g. [preflight.migration_check] url_variable)"""
    database_url: str | None = None
    """the target database when [target.migrations] database_url is unset"""
    squawk: bool = True
    now: Callable[[], datetime] = lambda: datetime.now(UTC)


@dataclass
class _Found:
    """The values read from the real systems, shared by the steps that show them."""

    services: list[ServiceChange] = field(default_factory=list)
    deploy_unresolved: list[Unresolved] = field(default_factory=list)
    migration: MigrationPlan | None = None
    migration_unresolved: list[Unresolved] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def _why(e: BaseException, secrets: Mapping[str, str]) -> str:
    """The error's first line, and its last when it has more (a tool's own last word)."""
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    text = " … ".join([lines[0], lines[-1]] if len(lines) > 1 else lines) or type(e).__name__
    return mask(text, secrets)[:400]


_DB_URL = re.compile(r"^postgres(?:ql)?(?:\+\w+)?://")


def url_variables(target: TargetConfig, *, deployer: Any = None) -> list[str]:
    """The environment variables of the migrations service's compose configuration that hold
    a database URL: where the team's env.py may read its URL from, when [target.migrations]
    does not name one (``url_variable``). Their values are never read into the plan."""
    from runbook.adapters.docker import ComposeDeployer

    cfg = target.deployer
    if not isinstance(cfg, ComposeDeployerConfig):
        return []
    deployer = deployer or ComposeDeployer(cfg, secrets=target.secrets(), cwd=Path.cwd())
    service = target.migrations.service or cfg.services[0].service
    spec = _compose_config(deployer, {}).get(service) or {}
    env = spec.get("environment") or {}
    return sorted(k for k, v in dict(env).items() if isinstance(v, str) and _DB_URL.match(v))


# --- registry --------------------------------------------------------------------------------

def registry_digest(image: str, *, scheme: str | None = None, token: str | None = None,
                    timeout: float = 10.0) -> str:
    """The manifest digest the registry serves for ``image`` now (what a pull gets)."""
    from runbook.adapters.kubernetes.deployer import manifest_digest
    from runbook.adapters.registry import ImageRef, RegistryError

    if scheme is None:
        host = ImageRef.parse(image).registry.split(":")[0]
        scheme = "http" if host in ("localhost", "127.0.0.1", "::1") else "https"
    try:
        return manifest_digest(image, scheme=scheme, token=token, timeout=timeout)
    except RegistryError:
        if scheme != "https":
            raise
        return manifest_digest(image, scheme="http", token=token, timeout=timeout)


# --- compose ---------------------------------------------------------------------------------

def _compose_config(deployer: Any, env: Mapping[str, str]) -> dict[str, Any]:
    r = deployer.compose("config", "--format", "json", env=env, timeout=60,
                         what="docker compose config")
    data: dict[str, Any] = json.loads(r.stdout).get("services") or {}
    return data


def _ports(spec: Mapping[str, Any]) -> str:
    out = []
    for p in spec.get("ports") or []:
        if isinstance(p, dict):
            out.append(f"{p.get('host_ip', '') + ':' if p.get('host_ip') else ''}"
                       f"{p.get('published', '')}:{p.get('target')}/{p.get('protocol', 'tcp')}")
        else:
            out.append(str(p))
    if spec.get("network_mode"):
        out.append(f"network_mode={spec['network_mode']}")
    return ", ".join(sorted(out)) or "(none)"


def _healthcheck(spec: Mapping[str, Any], secrets: Mapping[str, str]) -> str:
    hc = spec.get("healthcheck")
    if not hc:
        return "(none)"
    return mask(json.dumps(hc, sort_keys=True, separators=(",", ":")), secrets)


def compose_changes(before: Mapping[str, Any], after: Mapping[str, Any],
                    secrets: Mapping[str, str]) -> list[FieldChange]:
    """What changes in one service's compose configuration besides nothing: image, the
    environment's keys (values masked: only "changed" is said), ports, healthcheck."""
    out: list[FieldChange] = []
    if before.get("image") != after.get("image"):
        out.append(FieldChange("image", mask(str(before.get("image") or "(none)"), secrets),
                               mask(str(after.get("image") or "(none)"), secrets)))
    env_a = dict(before.get("environment") or {})
    env_b = dict(after.get("environment") or {})
    for key in sorted(set(env_a) | set(env_b)):
        if key not in env_a:
            out.append(FieldChange(f"environment.{key}", "(unset)", "set (value masked)"))
        elif key not in env_b:
            out.append(FieldChange(f"environment.{key}", "set (value masked)", "(unset)"))
        elif env_a[key] != env_b[key]:
            out.append(FieldChange(f"environment.{key}", "value masked",
                                   "another value (masked)"))
    if _ports(before) != _ports(after):
        out.append(FieldChange("ports", _ports(before), _ports(after)))
    if _healthcheck(before, secrets) != _healthcheck(after, secrets):
        out.append(FieldChange("healthcheck", _healthcheck(before, secrets),
                               _healthcheck(after, secrets)))
    return out


def _repo_digest(deployer: Any, image_id: str | None, repository: str) -> str | None:
    """The registry digest of a local image (its RepoDigests entry for ``repository``)."""
    if not image_id:
        return None
    try:
        img = deployer.client.images.get(image_id)
    except Exception:  # noqa: BLE001 - an image gone since `ps` is simply unknown
        return None
    for rd in img.attrs.get("RepoDigests") or []:
        name, _, digest = str(rd).partition("@")
        if name.endswith("/" + repository) or name == repository:
            return digest
    return None


def compose_services(target: TargetConfig, tag: str, secrets: Mapping[str, str],
                     *, deployer: Any = None) -> tuple[list[ServiceChange], list[Unresolved]]:
    """Each service that takes the release image: the RC's reference and digest, what runs
    now (its digest), and the compose configuration's changes for that service."""
    from runbook.adapters.docker import ComposeDeployer

    cfg = target.deployer
    assert isinstance(cfg, ComposeDeployerConfig)
    deployer = deployer or ComposeDeployer(cfg, secrets=dict(secrets), cwd=Path.cwd())
    unresolved: list[Unresolved] = []
    missing = [k for k in cfg.env_passthrough if k not in os.environ]
    if missing:
        unresolved.append(Unresolved("compose environment", f"env_passthrough names "
                                     f"{', '.join(missing)}, unset where the plan ran"))
    images = {s.service: cfg.image(s, tag) for s in cfg.services}
    with ThreadPoolExecutor(4, thread_name_prefix="plan-compose") as pool:
        digests = {svc: pool.submit(registry_digest, ref) for svc, ref in images.items()}
        running_f = pool.submit(deployer.current_images)
        running: dict[str, Any] = {}
        try:
            running = running_f.result()
        except Exception as e:  # noqa: BLE001 - any failure is shown, not raised
            unresolved.append(Unresolved("what runs now", _why(e, secrets)))
        current_env: dict[str, str] = {}
        for svc in cfg.services:
            info = running.get(svc.service)
            if info and info.tag and info.image.startswith(
                    f"{cfg.registry}/{svc.repository}:"):
                current_env[svc.tag_variable] = info.tag
        before_f = pool.submit(_compose_config, deployer, current_env)
        after_f = pool.submit(_compose_config, deployer, deployer.tag_env(tag))
        try:
            before, after = before_f.result(), after_f.result()
        except Exception as e:  # noqa: BLE001
            before, after = {}, {}
            unresolved.append(Unresolved("compose configuration", _why(e, secrets)))
        out = []
        for svc in cfg.services:
            try:
                digest: str | None = digests[svc.service].result()
            except Exception as e:  # noqa: BLE001
                digest = None
                unresolved.append(Unresolved(f"{svc.service} digest",
                                             f"{images[svc.service]}: {_why(e, secrets)}"))
            info = running.get(svc.service)
            current_digest = _repo_digest(deployer, info.image_id, svc.repository) if info else None
            if info is not None and current_digest is None:
                unresolved.append(Unresolved(f"{svc.service} current digest",
                                             f"{info.image} has no registry digest on this "
                                             "engine (built locally?)"))
            changes = (compose_changes(before.get(svc.service) or {},
                                       after.get(svc.service) or {}, secrets)
                       if before and after else [])
            spec = after.get(svc.service)
            out.append(ServiceChange(
                service=svc.service, image=images[svc.service], digest=digest,
                current_image=info.image if info else None, current_digest=current_digest,
                revision=None, changes=tuple(c for c in changes if c.field != "image"),
                config_sha256=hashlib.sha256(json.dumps(spec, sort_keys=True).encode()
                                             ).hexdigest() if spec else None))
    return out, unresolved


def kubernetes_services(target: TargetConfig, tag: str, secrets: Mapping[str, str],
                        *, deployer: Any = None) -> tuple[list[ServiceChange], list[Unresolved]]:
    """Each release container: the RC's digest from the registry, the Deployment's image now."""
    from runbook.adapters.kubernetes.deployer import KubernetesDeployer, key

    cfg = target.deployer
    assert isinstance(cfg, KubernetesDeployerConfig)
    unresolved: list[Unresolved] = []
    token = cfg.registry_token.get_secret_value() if cfg.registry_token else None
    running: dict[str, Any] = {}
    try:
        deployer = deployer or KubernetesDeployer(cfg, secrets=dict(secrets), cwd=Path.cwd(),
                                                  clock=time.monotonic, sleep=time.sleep)
        running = deployer.current_images()
    except Exception as e:  # noqa: BLE001
        unresolved.append(Unresolved("what runs now", _why(e, secrets)))
    out = []
    for c in cfg.containers:
        ref = cfg.image(c, tag)
        try:
            digest: str | None = registry_digest(ref, scheme=cfg.registry_scheme, token=token,
                                                 timeout=cfg.request_timeout_s)
        except Exception as e:  # noqa: BLE001
            digest = None
            unresolved.append(Unresolved(f"{key(c)} digest", f"{ref}: {_why(e, secrets)}"))
        now = running.get(key(c)) or {}
        out.append(ServiceChange(service=key(c), image=ref, digest=digest,
                                 current_image=now.get("image"),
                                 current_digest=now.get("image_id") or (
                                     str(now.get("image", "")).split("@", 1)[1]
                                     if "@" in str(now.get("image", "")) else None)))
    return out, unresolved


# --- migrations ------------------------------------------------------------------------------

def parse_chain(history: str, current: str | None, head: str) -> tuple[str, ...]:
    """The revisions from ``current`` (exclusive) up to ``head``, oldest first, read from
    ``alembic history`` lines (``0001_ledger -> 0002_payout (head), ...``)."""
    parent: dict[str, str | None] = {}
    for line in history.splitlines():
        m = _HISTORY_EDGE.match(line)
        if m:
            parent[m.group("up")] = None if m.group("down") == "<base>" else m.group("down")
    chain: list[str] = []
    at: str | None = head
    stops = set((current or "").split(",")) - {""}
    while at and at not in stops and at not in chain:
        chain.append(at)
        at = parent.get(at)
    return tuple(reversed(chain))


def _rc_image(target: TargetConfig, tag: str) -> str | None:
    d = target.deployer
    m = target.migrations
    if isinstance(d, ComposeDeployerConfig):
        svc = next((s for s in d.services if s.service == m.service), d.services[0])
        return d.image(svc, tag)
    if isinstance(d, KubernetesDeployerConfig):
        c = next((c for c in d.containers if c.deployment == m.service), d.containers[0])
        return d.image(c, tag)
    return None


def migration_plan(target: TargetConfig, inputs: PlanInputs, secrets: Mapping[str, str],
                   *, runner: Any = None, deployer: Any = None
                   ) -> tuple[MigrationPlan | None, list[Unresolved]]:
    """current → head, the chain, the upgrade and downgrade SQL, squawk's findings."""
    from runbook.adapters import alembic_cli, squawk

    m = target.migrations
    unresolved: list[Unresolved] = []
    url = (m.database_url.get_secret_value() if m.database_url else None) or inputs.database_url
    current: str | None = None
    if not url:
        unresolved.append(Unresolved("database revision", "no target database: set "
                                     "[target.migrations] database_url"))
    else:
        try:
            current = alembic_cli.current(url, version_table=m.version_table,
                                          schema=m.version_table_schema)
        except Exception as e:  # noqa: BLE001
            unresolved.append(Unresolved("database revision", _why(e, secrets)))
    url_variable = m.url_variable or inputs.url_variable
    extra: dict[str, str] = {}
    if runner is None and not url_variable and m.mode == "compose-run":
        try:  # the offline placeholder where the service's compose environment has a DB URL
            extra = {k: OFFLINE_URL for k in url_variables(target, deployer=deployer)}
        except Exception as e:  # noqa: BLE001
            unresolved.append(Unresolved("database URL variable", _why(e, secrets)))
    if runner is None:
        if m.mode == "alembic-api":
            if m.script_location is None:
                return None, [*unresolved, Unresolved("migrations", "mode alembic-api needs "
                                                      "[target.migrations] script_location")]
            runner = alembic_cli.ApiRunner(m.script_location, url_variable)
        else:
            image = _rc_image(target, inputs.rc_tag or "")
            if image is None or not inputs.rc_tag:
                return None, [*unresolved, Unresolved("migrations", "no RC image to read the "
                                                      "migrations from (no tag or deployer)")]
            runner = alembic_cli.ImageRunner(image, m.command, url_variable, extra,
                                             pull="missing")
    history = ""
    try:
        if isinstance(runner, alembic_cli.ImageRunner):
            history = runner.run(["history"], url=None, timeout=m.timeout_s,
                                 what="alembic history").stdout
            heads, _ = alembic_cli.parse_history(history)
        else:
            heads, _ = runner.history(timeout=m.timeout_s)
    except Exception as e:  # noqa: BLE001
        return (MigrationPlan(current=current, head=None),
                [*unresolved, Unresolved("migration head", _why(e, secrets))])
    head = ",".join(sorted(heads)) or None
    chain = parse_chain(history, current, head) if history and head else ()
    if head is None or current == head:
        return MigrationPlan(current=current, head=head, chain=chain), unresolved
    sql = down = ""
    findings: tuple[str, ...] = ()

    def downgrade_sql() -> str:
        return mask(runner.run(["downgrade", f"{head}:{current}", "--sql"], url=OFFLINE_URL,
                               timeout=m.timeout_s, what="alembic downgrade --sql").stdout,
                    secrets)

    with ThreadPoolExecutor(1, thread_name_prefix="plan-downgrade") as pool:
        # the rollback's downgrade SQL renders while the upgrade's renders and is linted
        down_f = pool.submit(downgrade_sql) if isinstance(
            runner, alembic_cli.ImageRunner) and current else None
        try:
            sql = mask(runner.offline_sql(OFFLINE_URL, current, timeout=m.timeout_s), secrets)
        except Exception as e:  # noqa: BLE001
            unresolved.append(Unresolved("upgrade SQL", _why(e, secrets)))
        if sql and inputs.squawk:
            try:
                findings = tuple(str(f) for f in squawk.lint(sql))
            except Exception as e:  # noqa: BLE001
                unresolved.append(Unresolved("squawk", _why(e, secrets)))
        if down_f is not None:
            try:
                down = down_f.result()
            except Exception as e:  # noqa: BLE001
                unresolved.append(Unresolved("downgrade SQL", _why(e, secrets)))
    return MigrationPlan(current=current, head=head, chain=chain, sql=sql, findings=findings,
                         down_sql=down), unresolved


# --- the steps -------------------------------------------------------------------------------

def _switch_lines(switch: Any, on: bool, label: str) -> list[str]:
    state = "on" if on else "off"
    if isinstance(switch, HttpSwitch):
        method = switch.method if on or not switch.off_method else switch.off_method
        body = (json.dumps(switch.on_body if on else switch.off_body, sort_keys=True)
                if switch.send_body else "no body")
        auth = f" with {switch.token_header} (masked)" if switch.token else ""
        return [f"{label} {state}: {method} {switch.url} {body}{auth}"]
    if isinstance(switch, CommandSwitch):
        return [f"{label} {state}: runs {' '.join(switch.on if on else switch.off)}"]
    if isinstance(switch, ComposeServiceSwitch):
        return [(f"{label} {state}: {'starts' if on else 'stops'} compose service "
                f"{switch.service}")]
    return []


def _maintenance(target: TargetConfig, on: bool) -> tuple[list[str], list[PlanCheck],
                                                           list[Unresolved]]:
    if target.maintenance is None:
        return [], [], [Unresolved("maintenance switch", "no [target.maintenance] configured")]
    page = target.maintenance_page
    checks = ([PlanCheck("maintenance page", f"{target.public_url}{page.path}",
                     f"HTTP {page.status}" + (f" with {page.expect_text!r}"
                                              if page.expect_text else ""))] if on else
              [PlanCheck("public health", f"{target.public_url}{target.health.path or ''}",
                     "HTTP 200")])
    return _switch_lines(target.maintenance, on, "maintenance"), checks, []


def _traffic(target: TargetConfig, open_: bool) -> tuple[list[str], list[PlanCheck],
                                                         list[Unresolved]]:
    if target.traffic is None:
        does, checks, un = _maintenance(target, not open_)
        return [f"traffic {'open' if open_ else 'closed'} through the maintenance switch",
                *does], checks, un
    does = _switch_lines(target.traffic, open_, "traffic")
    if open_ and target.maintenance is not None:
        does += _switch_lines(target.maintenance, False, "maintenance")
    return does, [PlanCheck("public health", f"{target.public_url}{target.health.path or ''}",
                        "HTTP 200" if open_ else "not 200")], []


def _health(target: TargetConfig, tag: str | None, head: str | None
            ) -> tuple[list[str], list[PlanCheck], list[Unresolved]]:
    h = target.health
    if not h.path:
        return [], [], [Unresolved("health path", "[target.health] path is unset")]
    expect = [json.dumps(h.expect, sort_keys=True)] if h.expect else ["HTTP 200, JSON"]
    if h.version_field and h.expect_version_from_tag and tag:
        expect.append(f"{h.version_field} = {tag}")
    if h.schema_field and head:
        expect.append(f"{h.schema_field} = {head}")
    checks = [PlanCheck("health", f"{target.internal_url}{h.path}", "; ".join(expect))]
    if target.admin_login.path:
        checks.append(PlanCheck("admin login", f"{target.internal_url}{target.admin_login.path}",
                            f"user {target.admin_login.username}, password masked"))
    if target.dashboard.path:
        checks.append(PlanCheck("dashboard", f"{target.internal_url}{target.dashboard.path}",
                            repr(target.dashboard.expect_text or "HTTP 200")))
    return [f"checks {c.name} at {c.target}" for c in checks], checks, []


def _smoke(target: TargetConfig, tag: str | None) -> tuple[list[str], list[PlanCheck],
                                                          list[Unresolved]]:
    s = target.smoke
    if s is None:
        return [], [], [Unresolved("smoke script", "no [target.smoke] configured")]
    args = [a.replace("{public_url}", target.public_url)
            .replace("{internal_url}", target.internal_url)
            .replace("{deployed_tag}", tag or "") for a in s.args]
    argv = " ".join([*s.interpreter, str(s.path), *args])
    keys = ", ".join(sorted(s.env)) or "none"
    return ([f"runs {argv} (timeout {s.timeout_s:.0f} s; environment keys: {keys})"],
            [PlanCheck("smoke script", argv)], [])


def _way_back(step: Step, runbook: Runbook, plan_steps: Mapping[str, StepPlan],
              facts: Mapping[str, Any]) -> str:
    rb = {s.kind: s for s in runbook.rollback}
    if step.kind == "deploy" and "rollback.revert_deploy" in rb:
        return f"`{rb['rollback.revert_deploy'].id}` runs each service on what runs now"
    if step.kind == "migrate" and "rollback.data" in rb:
        data = rb["rollback.data"]
        if str(data.params.get("strategy", "downgrade")) == "restore":
            when = facts.get("snapshot_taken_at")
            return (f"`{data.id}` restores the preflight snapshot"
                    + (f" taken at {when} (data written since is set aside)" if when else
                       " (no snapshot recorded yet: the backup drill takes it)"))
        return f"`{data.id}` runs alembic downgrade back to the revision before (SQL below)"
    if step.kind == "maintenance" and str(step.params.get("mode")) == "on":
        off = [s.id for s in runbook.all_steps() if s.kind == "maintenance"
               and str(s.params.get("mode")) == "off"]
        return f"`{off[0]}` turns it off" if off else "turn the switch off"
    if step.kind == "traffic" and str(step.params.get("action")) == "open" and not (
            step in runbook.rollback):
        first = runbook.rollback[0].id if runbook.rollback else None
        return f"`/golive rollback` starts with `{first}`" if first else ""
    if step in runbook.rollback:
        return ""
    return "read-only: nothing to undo" if step.kind in (
        "health", "smoke", "check.all") or step.kind.startswith("watch.") else ""


def _step(step: Step, runbook: Runbook, target: TargetConfig, inputs: PlanInputs,
          found: _Found, rollback: bool) -> StepPlan:
    gate = step.gate if not rollback else runbook.rollback_gate
    tag = inputs.rc_tag
    does: list[str] = []
    checks: list[PlanCheck] = []
    services: list[ServiceChange] = []
    migration: MigrationPlan | None = None
    unresolved: list[Unresolved] = []
    kind = step.kind
    head = found.migration.head if found.migration else None
    if kind == "maintenance":
        does, checks, unresolved = _maintenance(target, str(step.params.get("mode")) == "on")
    elif kind == "traffic":
        does, checks, unresolved = _traffic(target, str(step.params.get("action")) == "open")
    elif kind == "deploy":
        services, unresolved = list(found.services), list(found.deploy_unresolved)
        does = [f"deploys {tag} to {len(services)} service(s) "
                f"({', '.join(s.service for s in services)})" if tag else "deploys (no tag)"]
    elif kind == "migrate":
        migration, unresolved = found.migration, list(found.migration_unresolved)
        does = [f"alembic upgrade head on the target database ({target.migrations.mode})"]
    elif kind == "health":
        does, checks, unresolved = _health(target, tag, head)
    elif kind == "smoke":
        does, checks, unresolved = _smoke(target, tag)
    elif kind == "rollback.revert_deploy":
        does = ["runs each service again on " + (", ".join(
            f"{s.service}={s.current_image or '?'}" for s in found.services) or "what ran "
            "before the deploy")]
        services = [ServiceChange(s.service, s.current_image or "(unknown)", s.current_digest,
                                  s.image, s.digest) for s in found.services]
    elif kind == "rollback.data":
        strategy = str(step.params.get("strategy", "downgrade"))
        if strategy == "restore":
            when = inputs.run_facts.get("snapshot_taken_at")
            does = ["restores the preflight snapshot"
                    + (f" taken at {when}" if when else "")]
            if not when:
                unresolved = [Unresolved("snapshot time", "no snapshot recorded for this run "
                                         "yet (the backup drill takes it)")]
        elif found.migration is not None:
            mig = found.migration
            does = [f"alembic downgrade {mig.head} → {mig.current or 'base'}"]
            migration = MigrationPlan(current=mig.head, head=mig.current,
                                      sql=mig.down_sql)
    elif kind == "rollback.verify_readonly":
        paths = [target.health.path or "", target.admin_login.path or "", *target.readonly_paths]
        checks = [PlanCheck("read-only page", f"{target.internal_url}{p}") for p in paths if p]
        does = [f"loads {len(checks)} page(s) on the old version"]
    elif kind == "check.all":
        does = [("runs the pre-cutover checks together (freeze, prod config, backup drill, "
                "migration dry run, RC evidence)")]
    else:
        does = [f"{kind}: as configured in the golive config"]
    return StepPlan(
        step_id=step.id, title=step.title, kind=kind, command=step.command, rollback=rollback,
        does=tuple(does), checks=tuple(checks), services=tuple(services), migration=migration,
        gated=gate is not None, approvals=gate.approvals if gate else 0,
        groups=tuple(gate.groups) if gate else (), unresolved=tuple(unresolved))


def compute(runbook: Runbook, target: TargetConfig, inputs: PlanInputs, *,
            deployer: Any = None, runner: Any = None,
            timings: dict[str, float] | None = None, only: str | None = None) -> Plan:
    """The whole night, from the real sources, changing nothing. ``timings``: filled with
    how long the services (registry, compose) and the migrations (database, image) took.
    ``only``: a step id; the plan then holds that step alone, and only the sources its kind
    needs are read (what an approval binds and the claim recomputes: :func:`compute_step`)."""
    secrets = {**target.secrets(), **dict(inputs.secrets)}
    found = _Found()
    plan_unresolved: list[Unresolved] = []
    tag = inputs.rc_tag
    kinds = {s.kind for s in runbook.all_steps()} if only is None else \
        {runbook.step(only).kind}
    t0 = time.monotonic()

    def services() -> None:
        t = time.monotonic()
        if not tag:
            found.deploy_unresolved.append(Unresolved("release images", "no RC tag: start a "
                                                      "run or pass --tag"))
        elif isinstance(target.deployer, ComposeDeployerConfig):
            try:
                found.services, found.deploy_unresolved = compose_services(
                    target, tag, secrets, deployer=deployer)
            except Exception as e:  # noqa: BLE001
                found.deploy_unresolved.append(Unresolved("compose project", _why(e, secrets)))
        elif isinstance(target.deployer, KubernetesDeployerConfig):
            found.services, found.deploy_unresolved = kubernetes_services(
                target, tag, secrets, deployer=deployer)
        else:
            found.deploy_unresolved.append(Unresolved("deployer", "no [target.deployer]"))
        found.timings["services_s"] = time.monotonic() - t

    def migrations() -> None:
        t = time.monotonic()
        try:
            found.migration, found.migration_unresolved = migration_plan(
                target, inputs, secrets, runner=runner, deployer=deployer)
        except Exception as e:  # noqa: BLE001
            found.migration_unresolved.append(Unresolved("migrations", _why(e, secrets)))
        found.timings["migrations_s"] = time.monotonic() - t

    with ThreadPoolExecutor(2, thread_name_prefix="plan") as pool:
        jobs = []
        if kinds & {"deploy", "rollback.revert_deploy"}:
            jobs.append(pool.submit(services))
        if kinds & {"migrate", "rollback.data", "health"}:
            jobs.append(pool.submit(migrations))
        for j in jobs:
            j.result()
    steps: list[StepPlan] = []
    for step in runbook.all_steps():
        if only is not None and step.id != only:
            continue
        rollback = step in runbook.rollback
        sp = _step(step, runbook, target, inputs, found, rollback)
        steps.append(sp)
    by_id = {s.step_id: s for s in steps}
    steps = [replace(s, way_back=_way_back(runbook.step(s.step_id), runbook, by_id,
                                           inputs.run_facts)) for s in steps]
    found.timings["total_s"] = time.monotonic() - t0
    if timings is not None:
        timings.update(found.timings)
    return Plan(runbook=runbook.name, runbook_version=runbook.version,
                target=target.name or (target.deployer.kind if target.deployer else ""),
                rc_tag=tag, run_id=inputs.run_id,
                steps=with_durations(steps, inputs.history),
                unresolved=tuple(plan_unresolved),
                computed_at=inputs.now().isoformat(timespec="seconds"))


def compute_step(runbook: Runbook, target: TargetConfig, inputs: PlanInputs, step_id: str, *,
                 deployer: Any = None, runner: Any = None) -> Plan:
    """One step's part of the plan (a plan holding that step alone), from the sources its
    kind needs: the registry and compose for a deploy, the database and the RC image for a
    migration, nothing but the config for a switch. ``step_digest(plan, step_id)`` of it is
    what an approval binds; the claim computes it again and compares."""
    return compute(runbook, target, inputs, deployer=deployer, runner=runner, only=step_id)
