"""A Job from a release image with the pod template of a release container (its env, envFrom
and host network), the database URL passed through a short-lived Secret, never in the Job's
spec; and the migrator that runs every alembic call as such a Job."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from runbook.adapters.images import Progress
from runbook.adapters.kubernetes.client import KubeClient
from runbook.adapters.kubernetes.deployer import KubernetesDeployer, key
from runbook.adapters.redact import tail
from runbook.errors import StepFailed
from runbook.target import Migrations
from runbook.target_deployers import ContainerImage

MANAGED_BY = {"app.kubernetes.io/managed-by": "golive"}


def run_job(kube: KubeClient, image: str, command: list[str], *, template_from: str,
            env: Mapping[str, str], timeout: float, what: str, progress: Progress
            ) -> tuple[int, str]:
    """A Job from ``image`` running ``command`` with the pod template of the release
    container ``template_from`` ("deployment/container"): (exit code, its log). ``env``
    travels in a Secret that lives as long as the Job."""
    from kubernetes import client

    dep, _, cname = template_from.partition("/")
    with kube.calling(f"reading Deployment {dep}"):
        d = kube._apps().read_namespaced_deployment(dep, kube.cfg.namespace, **kube._kw())
    pod = d.spec.template.spec
    base = next((c for c in pod.containers if c.name == cname), None)
    if base is None:
        raise StepFailed(f"Deployment {dep} has no container {cname}")
    name = f"golive-{what.split()[0]}-{uuid.uuid4().hex[:8]}"
    container = client.V1Container(
        name="migrate", image=image, command=list(command), env=list(base.env or []),
        env_from=list(base.env_from or []), image_pull_policy=base.image_pull_policy)
    core, batch = kube._core(), kube._batch()
    if env:
        with kube.calling(f"creating Secret {name}"):
            core.create_namespaced_secret(kube.cfg.namespace, client.V1Secret(
                metadata=client.V1ObjectMeta(name=name, labels=MANAGED_BY),
                string_data=dict(env)), **kube._kw())
        container.env = [e for e in container.env if e.name not in env] + [
            client.V1EnvVar(name=k, value_from=client.V1EnvVarSource(
                secret_key_ref=client.V1SecretKeySelector(name=name, key=k)))
            for k in env]
    job = client.V1Job(
        metadata=client.V1ObjectMeta(name=name, labels=MANAGED_BY),
        spec=client.V1JobSpec(
            backoff_limit=0, ttl_seconds_after_finished=3600,
            active_deadline_seconds=max(1, int(timeout)),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={**MANAGED_BY, "golive/job": name}),
                spec=client.V1PodSpec(
                    restart_policy="Never", containers=[container],
                    host_network=pod.host_network, dns_policy=pod.dns_policy,
                    image_pull_secrets=pod.image_pull_secrets,
                    service_account_name=pod.service_account_name,
                    node_selector=pod.node_selector, tolerations=pod.tolerations))))
    try:
        with kube.calling(f"creating Job {name}"):
            batch.create_namespaced_job(kube.cfg.namespace, job, **kube._kw())
        progress(f"Job {name}: {' '.join(command[:4])}…")
        deadline = kube.clock() + timeout
        while True:
            with kube.calling(f"reading Job {name}"):
                st = batch.read_namespaced_job(name, kube.cfg.namespace,
                                               **kube._kw()).status
            if st.succeeded or st.failed:
                break
            if kube.clock() >= deadline:
                reasons = kube.pod_reasons(selector=f"golive/job={name}")
                raise StepFailed(f"{what}: Job {name} did not finish within "
                                 f"{timeout:g} s" + ("\npods: " + "\n".join(reasons)
                                                     if reasons else ""))
            kube.sleep(min(kube.cfg.poll_interval_s, max(0.0, deadline - kube.clock())))
        log, code = _job_log(kube, name)
        return (0 if st.succeeded else (code or 1)), kube._mask(log)
    finally:
        with contextlib.suppress(StepFailed), kube.calling(f"deleting Job {name}"):
            batch.delete_namespaced_job(name, kube.cfg.namespace,
                                        propagation_policy="Background", **kube._kw())
        if env:
            with contextlib.suppress(StepFailed), kube.calling(f"deleting Secret {name}"):
                core.delete_namespaced_secret(name, kube.cfg.namespace, **kube._kw())


def _job_log(kube: KubeClient, name: str) -> tuple[str, int | None]:
    with kube.calling(f"reading Job {name}'s pod"):
        pods = kube._core().list_namespaced_pod(
            kube.cfg.namespace, label_selector=f"golive/job={name}", **kube._kw()).items
    if not pods:
        return "", None
    p = pods[0]
    code = None
    for cs in p.status.container_statuses or []:
        if cs.state and cs.state.terminated:
            code = cs.state.terminated.exit_code
    try:
        with kube.calling(f"reading Job {name}'s log"):
            log = kube._core().read_namespaced_pod_log(p.metadata.name, kube.cfg.namespace,
                                                       **kube._kw())
    except StepFailed as e:
        log = f"(no log: {e.message})"
    if code is None and not log:
        log = "\n".join(kube.pod_reasons(selector=f"golive/job={name}"))
    return log or "", code


def job_env(cfg: Migrations) -> dict[str, str]:
    url = cfg.database_url.get_secret_value() if cfg.database_url else ""
    return {cfg.url_variable: url} if cfg.url_variable and url else {}


def tail_lines(text: str) -> str:
    return tail(text, 10, 1500)

class KubernetesJobMigrator:
    """Every alembic call as a Job from the deployed image (``[target.migrations] command``,
    the same invocation for current, upgrade, downgrade and heads), in the deployer's
    namespace, with the pod template of the release container of ``[target.migrations]
    service`` (a Deployment; default the first of ``[target.deployer] containers``)."""

    def __init__(self, cfg: Migrations, deployer: KubernetesDeployer, facts: Mapping[str, Any],
                 timeout: Callable[[], float], progress: Progress = lambda _line: None):
        self.cfg = cfg
        self.deployer = deployer
        self.facts = facts
        self.timeout = timeout
        self.progress = progress

    def _container(self) -> ContainerImage:
        cs = self.deployer.cfg.containers
        if not self.cfg.service:
            return cs[0]
        found = next((c for c in cs if self.cfg.service in (c.deployment, key(c))), None)
        if found is None:
            raise StepFailed(f"[target.migrations] service {self.cfg.service!r} is none of "
                             "[target.deployer] containers' Deployments")
        return found

    def _image(self, c: ContainerImage) -> str:
        # The image the deploy put there (it holds the migrations the rollback downgrades
        # through), else what runs now.
        deployed = (self.facts.get("deployed_images") or {}).get(key(c)) or {}
        if deployed.get("image"):
            return str(deployed["image"])
        now = self.deployer.current_images().get(key(c))
        if not now:
            raise StepFailed(f"Deployment {c.deployment} does not exist in namespace "
                             f"{self.deployer.cfg.namespace}: deploy first")
        return str(now["image"])

    def _job(self, command: list[str], what: str) -> tuple[int, str]:
        c = self._container()
        code, log = run_job(
            self.deployer, self._image(c), command, template_from=key(c), env=job_env(self.cfg),
            timeout=min(self.cfg.timeout_s, max(1.0, self.timeout())), what=f"migrate {what}",
            progress=self.progress)
        for line in log.splitlines()[-20:]:
            self.progress(f"| {line}")
        return code, log

    def _alembic(self, *args: str, what: str) -> str:
        from runbook.adapters.migrations import _hint

        code, log = self._job([*self.cfg.command, *args], what)
        if code != 0:
            raise StepFailed(f"alembic {what} failed (exit {code}):\n{tail_lines(log)}"
                             + _hint(self.cfg, log))
        return log

    def current_revision(self) -> str | None:
        from runbook.adapters.migrations import parse_current

        return parse_current(self._alembic("current", what="current"))

    def heads(self) -> list[str]:
        from runbook.adapters.migrations import parse_current

        rev = parse_current(self._alembic("heads", what="heads"))
        return rev.split(",") if rev else []

    def upgrade(self, target: str = "head") -> str:
        return self._alembic("upgrade", target, what=f"upgrade {target}")

    def downgrade(self, revision: str) -> str:
        return self._alembic("downgrade", revision, what=f"downgrade {revision}")

    def upgrade_reporting(self, target: str) -> Any:
        """current, upgrade, current and heads in ONE Job (``sh`` runs the invocation four
        times, as compose-run does); None when the image has no ``sh``."""
        from runbook.adapters.migrations import (
            _ONE_RUN,
            UpgradeReport,
            _hint,
            _sections,
            parse_current,
            validate_revision,
        )

        code, log = self._job(["sh", "-c", _ONE_RUN, "sh", validate_revision(target),
                               *self.cfg.command], f"upgrade {target}")
        parts = _sections(log)
        if "before" not in parts:
            low = log.lower()
            if code in (126, 127, 128) or "no such file" in low or "executable file not found" \
                    in low or "startcontainer" in low:
                return None
            raise StepFailed(f"alembic upgrade {target} failed (exit {code}):\n"
                             f"{tail_lines(log)}")
        before = parse_current(parts["before"])
        if code != 0:
            phase = list(parts)[-1]
            what = {"before": "current", "upgrade": f"upgrade {target}",
                    "after": "current (after the upgrade)", "heads": "heads"}[phase]
            raise StepFailed(f"alembic {what} failed (exit {code}):\n"
                             f"{tail_lines(parts[phase])}" + _hint(self.cfg, log),
                             facts={"alembic_before": before} if phase != "before" else {})
        heads = parse_current(parts.get("heads", ""))
        return UpgradeReport(before=before, after=parse_current(parts.get("after", "")),
                             heads=heads.split(",") if heads else [], output=log)
