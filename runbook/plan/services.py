"""Where a deploy's part of the plan comes from, changing nothing: the registry (each release
image's manifest digest now), the compose project (what runs now, and ``docker compose config``
with today's tag vs the RC's tag) or the Kubernetes Deployments (what runs now). Environment
values are never read into the plan: only their keys, and whether the value changes; secrets
are masked (``mask``). Whatever cannot be read is an ``Unresolved`` entry with why
(:func:`why`: how any source's failure reads, the migrations' too).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from runbook.adapters.redact import mask
from runbook.plan.model import FieldChange, ServiceChange, Unresolved
from runbook.target import TargetConfig
from runbook.target_deployers import ComposeDeployerConfig, KubernetesDeployerConfig


def why(e: BaseException, secrets: Mapping[str, str]) -> str:
    """The error's first line, and its last when it has more (a tool's own last word)."""
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    text = " … ".join([lines[0], lines[-1]] if len(lines) > 1 else lines) or type(e).__name__
    return mask(text, secrets)[:400]


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


def repo_digest(deployer: Any, image_id: str | None, repository: str) -> str | None:
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
            unresolved.append(Unresolved("what runs now", why(e, secrets)))
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
            unresolved.append(Unresolved("compose configuration", why(e, secrets)))
        out = []
        for svc in cfg.services:
            try:
                digest: str | None = digests[svc.service].result()
            except Exception as e:  # noqa: BLE001
                digest = None
                unresolved.append(Unresolved(f"{svc.service} digest",
                                             f"{images[svc.service]}: {why(e, secrets)}"))
            info = running.get(svc.service)
            current_digest = repo_digest(deployer, info.image_id, svc.repository) if info else None
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
        unresolved.append(Unresolved("what runs now", why(e, secrets)))
    out = []
    for c in cfg.containers:
        ref = cfg.image(c, tag)
        try:
            digest: str | None = registry_digest(ref, scheme=cfg.registry_scheme, token=token,
                                                 timeout=cfg.request_timeout_s)
        except Exception as e:  # noqa: BLE001
            digest = None
            unresolved.append(Unresolved(f"{key(c)} digest", f"{ref}: {why(e, secrets)}"))
        now = running.get(key(c)) or {}
        out.append(ServiceChange(service=key(c), image=ref, digest=digest,
                                 current_image=now.get("image"),
                                 current_digest=now.get("image_id") or (
                                     str(now.get("image", "")).split("@", 1)[1]
                                     if "@" in str(now.get("image", "")) else None)))
    return out, unresolved
