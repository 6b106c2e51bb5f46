"""Effect certification (issue 20, item 3): after a step, read what really runs and compare it
with the approved step plan. Each function reads the real state once, changes nothing, and
returns a :class:`Certification`: what it compared (for the audit) and the differences (empty:
certified). A source that cannot be read is a difference too ("could not read ..."): a step is
never certified on a guess.

Not hooked into the engine yet: the step runner calls :func:`certify_step` after a step
succeeded and fails the step on any difference.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runbook.adapters.redact import mask
from runbook.plan.model import StepPlan
from runbook.target import TargetConfig
from runbook.target_deployers import ComposeDeployerConfig, KubernetesDeployerConfig


@dataclass(frozen=True)
class Difference:
    what: str
    expected: str | None
    found: str | None

    def __str__(self) -> str:
        return f"{self.what}: expected {self.expected or '(none)'}, found {self.found or '(none)'}"


@dataclass
class Certification:
    step_id: str
    compared: list[str] = field(default_factory=list)
    """what was compared, one line each (``app digest: sha256:... = sha256:...``)"""
    differences: list[Difference] = field(default_factory=list)

    @property
    def certified(self) -> bool:
        return not self.differences

    def as_fact(self) -> dict[str, Any]:
        """For the audit row: what was compared and what differed."""
        return {"step": self.step_id, "certified": self.certified, "compared": self.compared,
                "differences": [str(d) for d in self.differences]}


def _secrets(target: TargetConfig, extra: Mapping[str, str] | None) -> dict[str, str]:
    return {**target.secrets(), **dict(extra or {})}


def _fail_read(cert: Certification, what: str, e: BaseException, secrets: Mapping[str, str]
               ) -> Certification:
    cert.differences.append(Difference(what, "readable", mask(
        f"could not read: {str(e).strip().splitlines()[0] if str(e).strip() else e!r}",
        secrets)[:300]))
    return cert


# --- deploy ----------------------------------------------------------------------------------

def running_digests_compose(target: TargetConfig, *, deployer: Any = None,
                            secrets: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """service -> the registry digest of the image its running container uses (None when the
    image has none for the service's repository); a service not running is left out."""
    from runbook.adapters.docker import ComposeDeployer
    from runbook.plan.services import repo_digest

    cfg = target.deployer
    assert isinstance(cfg, ComposeDeployerConfig)
    deployer = deployer or ComposeDeployer(cfg, secrets=dict(secrets or {}), cwd=Path.cwd())
    running = deployer.current_images()
    repos = {s.service: s.repository for s in cfg.services}
    return {svc: repo_digest(deployer, info.image_id, repos.get(svc, ""))
            for svc, info in running.items() if svc in repos}


def running_digests_kubernetes(target: TargetConfig, *, deployer: Any = None,
                               secrets: Mapping[str, str] | None = None
                               ) -> dict[str, list[str]]:
    """"deployment/container" -> the image digests its live pods run (from each pod's
    containerStatuses imageID), one entry per pod."""
    from runbook.adapters.kubernetes.deployer import KubernetesDeployer, key

    cfg = target.deployer
    assert isinstance(cfg, KubernetesDeployerConfig)
    deployer = deployer or KubernetesDeployer(cfg, secrets=dict(secrets or {}), cwd=Path.cwd(),
                                              clock=time.monotonic, sleep=time.sleep)
    apps, core = deployer._apps(), deployer._core()
    out: dict[str, list[str]] = {}
    for c in cfg.containers:
        with deployer.calling(f"reading Deployment {c.deployment}"):
            d = apps.read_namespaced_deployment(c.deployment, cfg.namespace, **deployer._kw())
            labels = (d.spec.selector.match_labels or {})
            selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
            pods = core.list_namespaced_pod(cfg.namespace, label_selector=selector,
                                            **deployer._kw()).items
        found: list[str] = []
        for pod in pods:
            if pod.metadata.deletion_timestamp is not None:
                continue
            for st in pod.status.container_statuses or []:
                if st.name == c.container:
                    image_id = str(st.image_id or "")
                    found.append(image_id.rsplit("@", 1)[1] if "@" in image_id else image_id)
        out[key(c)] = found
    return out


def certify_deploy(target: TargetConfig, plan: StepPlan, *, deployer: Any = None,
                   secrets: Mapping[str, str] | None = None) -> Certification:
    """Every service the plan names runs its planned digest (every live pod, on Kubernetes)."""
    secrets = _secrets(target, secrets)
    cert = Certification(plan.step_id)
    try:
        if isinstance(target.deployer, KubernetesDeployerConfig):
            pods = running_digests_kubernetes(target, deployer=deployer, secrets=secrets)
            for s in plan.services:
                seen = pods.get(s.service) or []
                cert.compared.append(f"{s.service} pods' digests {sorted(set(seen))} = "
                                     f"{s.digest}")
                wrong = sorted({d for d in seen if d != s.digest}) or ([] if seen else [None])
                for d in wrong:
                    cert.differences.append(Difference(f"{s.service} digest", s.digest, d))
            return cert
        running = running_digests_compose(target, deployer=deployer, secrets=secrets)
    except Exception as e:  # noqa: BLE001 - an unreadable source is a difference
        return _fail_read(cert, "running images", e, secrets)
    for s in plan.services:
        found = running.get(s.service)
        cert.compared.append(f"{s.service} digest: running {found} = planned {s.digest}")
        if s.service not in running:
            cert.differences.append(Difference(f"{s.service} container", s.digest,
                                               "not running"))
        elif found != s.digest:
            cert.differences.append(Difference(f"{s.service} digest", s.digest, found))
    return cert


# --- migrate ---------------------------------------------------------------------------------

def certify_migrate(target: TargetConfig, plan: StepPlan, *, database_url: str | None = None
                    ) -> Certification:
    """The target database's alembic revision is the planned head."""
    from runbook.adapters import alembic_cli

    secrets = _secrets(target, None)
    cert = Certification(plan.step_id)
    m = target.migrations
    url = (m.database_url.get_secret_value() if m.database_url else None) or database_url
    head = plan.migration.head if plan.migration else None
    if not url:
        cert.differences.append(Difference("database revision", head, "no database_url to "
                                           "read it from"))
        return cert
    try:
        now = alembic_cli.current(url, version_table=m.version_table,
                                  schema=m.version_table_schema)
    except Exception as e:  # noqa: BLE001
        return _fail_read(cert, "database revision", e, secrets)
    cert.compared.append(f"database revision: {now} = planned head {head}")
    if now != head:
        cert.differences.append(Difference("database revision", head, now))
    return cert


# --- switches --------------------------------------------------------------------------------

def _get(target: TargetConfig, url: str) -> tuple[int | None, str]:
    from runbook.adapters.http import client

    with client(target.probe) as http:
        try:
            r = http.get(url)
        except Exception as e:  # noqa: BLE001
            return None, f"{type(e).__name__}"
        return r.status_code, r.text[:2000]


def certify_maintenance(target: TargetConfig, *, on: bool) -> Certification:
    """On: the public page answers the maintenance status (and text). Off: public health 200."""
    cert = Certification("maintenance-" + ("on" if on else "off"))
    page = target.maintenance_page
    if on:
        url = f"{target.public_url}{page.path}"
        status, body = _get(target, url)
        text_ok = page.expect_text is None or page.expect_text in body
        cert.compared.append(f"maintenance page {url}: HTTP {status} = {page.status}"
                             + (f", text {page.expect_text!r} {'found' if text_ok else 'missing'}"
                                if page.expect_text else ""))
        if status != page.status or not text_ok:
            cert.differences.append(Difference(
                "maintenance page", f"HTTP {page.status}" + (
                    f" with {page.expect_text!r}" if page.expect_text else ""),
                f"HTTP {status}" + ("" if text_ok else " without the text")))
        return cert
    return _public_open(target, cert, "maintenance off")


def _public_open(target: TargetConfig, cert: Certification, what: str) -> Certification:
    url = f"{target.public_url}{target.health.path or '/'}"
    status, _ = _get(target, url)
    cert.compared.append(f"{what}: public {url}: HTTP {status} = 200")
    if status != 200:
        cert.differences.append(Difference(f"{what} (public health)", "HTTP 200",
                                           f"HTTP {status}"))
    return cert


def certify_traffic(target: TargetConfig, *, open_: bool) -> Certification:
    """Open: public health answers 200. Closed: it does not."""
    cert = Certification("traffic-" + ("open" if open_ else "close"))
    if open_:
        return _public_open(target, cert, "traffic open")
    url = f"{target.public_url}{target.health.path or '/'}"
    status, _ = _get(target, url)
    cert.compared.append(f"traffic closed: public {url}: HTTP {status} != 200")
    if status == 200:
        cert.differences.append(Difference("traffic closed (public health)", "not HTTP 200",
                                           "HTTP 200"))
    return cert


def certify_step(target: TargetConfig, plan: StepPlan, params: Mapping[str, Any], *,
                 database_url: str | None = None) -> Certification | None:
    """The certification of one step kind (None: the kind has no effect to certify)."""
    if plan.kind == "deploy":
        return certify_deploy(target, plan)
    if plan.kind == "migrate":
        return certify_migrate(target, plan, database_url=database_url)
    if plan.kind == "maintenance":
        cert = certify_maintenance(target, on=str(params.get("mode")) == "on")
    elif plan.kind == "traffic":
        cert = certify_traffic(target, open_=str(params.get("action")) == "open")
    else:
        return None
    cert.step_id = plan.step_id
    return cert
