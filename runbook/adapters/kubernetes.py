"""Deploy to a Kubernetes namespace with the official client (``kubernetes``).

The deploy server-side applies the team's manifests (``field_manager``, conflicts forced: the
cutover owns the fields it applies) with the release image substituted, pinned by the digest
the registry gives for the tag; then it waits for every Deployment of the manifests to roll
out (observed generation, updated, ready-and-available and no old replicas: what
``kubectl rollout status`` waits for). The revert re-applies the same manifests with the images
recorded before the deploy, so apply's idempotence makes a Retry safe. Migrations run as a Job
from the deployed image with the pod template of a release container (its env, envFrom and
host network), the database URL passed through a short-lived Secret, never in the Job's spec.

Every API error becomes a :class:`StepFailed` that says what was asked and what the server (or
the network) answered; nothing here raises the client's own exceptions to a step.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import yaml

from runbook.adapters.images import REVISION_LABEL, ImageInfo, Progress
from runbook.adapters.redact import mask, tail
from runbook.adapters.registry import _ACCEPT, ImageRef, RegistryError, image_labels
from runbook.errors import StepFailed
from runbook.target import ContainerImage, KubernetesDeployerConfig, Migrations

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
MANAGED_BY = {"app.kubernetes.io/managed-by": "golive"}
# What the deployer asks the API server for: (verb, group, resource). `golive config check`
# asks a SelfSubjectAccessReview for each; deploy/k8s-rbac.yaml grants exactly these.
NEEDED_ACCESS: tuple[tuple[str, str, str], ...] = (
    ("get", "apps", "deployments"), ("list", "apps", "deployments"),
    ("patch", "apps", "deployments"), ("list", "apps", "replicasets"),
    ("list", "", "pods"), ("get", "", "pods/log"), ("list", "", "events"),
    ("create", "batch", "jobs"), ("get", "batch", "jobs"), ("delete", "batch", "jobs"),
    ("create", "", "secrets"), ("delete", "", "secrets"),
)


def key(c: ContainerImage) -> str:
    return f"{c.deployment}/{c.container}"


def load_manifests(path: Path) -> list[dict[str, Any]]:
    """The objects of a YAML file, or of every *.yaml/*.yml of a directory in name order."""
    if not path.exists():
        raise StepFailed(f"[target.deployer] manifests: {path} does not exist")
    files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml")) \
        if path.is_dir() else [path]
    if any(p.name in ("kustomization.yaml", "kustomization.yml") for p in files):
        raise StepFailed(f"{path} is a kustomization: golive applies plain manifests; render "
                         "it to a file first (`kubectl kustomize`)")
    objects: list[dict[str, Any]] = []
    for f in files:
        try:
            docs = list(yaml.safe_load_all(f.read_text()))
        except (OSError, yaml.YAMLError) as e:
            raise StepFailed(f"cannot read the manifest {f}: {str(e).splitlines()[0]}") from None
        for doc in docs:
            if doc is None:
                continue
            if not isinstance(doc, dict) or not doc.get("kind") or not doc.get("apiVersion") \
                    or not (doc.get("metadata") or {}).get("name"):
                raise StepFailed(f"{f}: every document needs apiVersion, kind and metadata.name")
            objects.append(doc)
    if not objects:
        raise StepFailed(f"[target.deployer] manifests: no YAML objects in {path}")
    return objects


def manifest_digest(image: str, *, scheme: str, token: str | None, timeout: float) -> str:
    """The digest the registry serves for ``image``'s tag (what a pull by tag would get)."""
    ref = ImageRef.parse(image)
    headers = {"Accept": _ACCEPT}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    url = f"{scheme}://{ref.registry}/v2/{ref.repository}/manifests/{ref.reference}"
    try:
        r = httpx.head(url, headers=headers, timeout=timeout, follow_redirects=True)
        if r.status_code == 405 or (r.is_success and "docker-content-digest" not in r.headers):
            r = httpx.get(url, headers=headers, timeout=timeout, follow_redirects=True)
    except httpx.HTTPError as e:
        raise RegistryError(f"registry {ref.registry} unreachable ({scheme}): "
                            f"{type(e).__name__}: {e}") from None
    if r.status_code == 404:
        raise RegistryError(f"image {ref} not found in the registry (manifest unknown)")
    if r.status_code in (401, 403):
        raise RegistryError(f"registry {ref.registry} refused {ref} (HTTP {r.status_code}): "
                            "set [target.deployer] registry_token")
    if r.status_code >= 400:
        raise RegistryError(f"registry {ref.registry}: HTTP {r.status_code} for {ref}")
    digest = r.headers.get("docker-content-digest", "")
    if not digest.startswith("sha256:"):
        raise RegistryError(f"registry {ref.registry} gave no digest for {ref}")
    return digest


def _digest_of(image: str) -> str | None:
    return image.split("@", 1)[1] if "@" in image else None


def api_client(cfg: KubernetesDeployerConfig) -> Any:
    """An ``ApiClient`` for the configured kubeconfig/context, or the pod's service account."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    try:
        if cfg.in_cluster:
            conf = client.Configuration()
            conf.retries = 1
            config.load_incluster_config(client_configuration=conf)
            return client.ApiClient(conf)
        path = str(cfg.kubeconfig) if cfg.kubeconfig else os.environ.get(
            "KUBECONFIG", "~/.kube/config").split(os.pathsep)[0]
        path = os.path.expanduser(path)
        if not os.path.exists(path):
            raise StepFailed(f"kubeconfig {path} does not exist: set [target.deployer] "
                             "kubeconfig (or in_cluster = true)")
        conf = client.Configuration()
        conf.retries = 1  # an unreachable server is said at once, not after 3 retries
        return config.new_client_from_config(config_file=path, context=cfg.context,
                                             persist_config=False, client_configuration=conf)
    except ConfigException as e:
        raise StepFailed(f"cannot load the kubeconfig: {str(e).splitlines()[0][:300]}") from None


class KubernetesDeployer:
    """The deploy, its rollout wait and the revert, for one namespace."""

    def __init__(self, cfg: KubernetesDeployerConfig, *, secrets: Mapping[str, str] | None = None,
                 clock: Callable[[], float], sleep: Callable[[float], None],
                 cwd: Path | None = None):
        self.cfg = cfg
        self.secrets = dict(secrets or {})
        self.clock = clock
        self.sleep = sleep
        self.cwd = cwd or Path.cwd()
        self._api: Any = None
        self._dyn: Any = None

    # -- plumbing ------------------------------------------------------------------------------
    def _mask(self, text: str) -> str:
        return mask(text, self.secrets)

    @property
    def api(self) -> Any:
        if self._api is None:
            self._api = api_client(self.cfg)
        return self._api

    @property
    def server(self) -> str:
        return str(self.api.configuration.host)

    def _kw(self) -> dict[str, Any]:
        return {"_request_timeout": self.cfg.request_timeout_s}

    @contextlib.contextmanager
    def calling(self, what: str) -> Iterator[None]:
        """Turn the client's errors into one clear line: the API server unreachable, a
        refusal (with its reason), or an object missing."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError as Urllib3Error

        try:
            yield
        except StepFailed:
            raise
        except ApiException as e:
            raise StepFailed(self._mask(f"{what}: the API server answered {e.status} "
                                        f"{e.reason}: {_api_message(e)}")[:600]) from None
        except (Urllib3Error, OSError) as e:
            reason = getattr(e, "reason", None) or e
            raise StepFailed(self._mask(
                f"{what}: Kubernetes API server unreachable at {self.server}: "
                f"{type(reason).__name__}: {str(reason)[:200]}")) from None

    @property
    def dyn(self) -> Any:
        if self._dyn is None:
            from kubernetes.dynamic import DynamicClient

            with self.calling("reading the API server's resource types"):
                self._dyn = DynamicClient(self.api)
        return self._dyn

    def _apps(self) -> Any:
        from kubernetes import client

        return client.AppsV1Api(self.api)

    def _core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.api)

    def _batch(self) -> Any:
        from kubernetes import client

        return client.BatchV1Api(self.api)

    def manifests(self) -> list[dict[str, Any]]:
        path = self.cfg.manifests
        return load_manifests(path if path.is_absolute() else self.cwd / path)

    # -- images --------------------------------------------------------------------------------
    def resolve(self, tag: str, progress: Progress) -> dict[str, ImageInfo]:
        """Each release container's image for ``tag``, pinned by the registry's digest, with
        its revision label. Nothing in the cluster changes."""
        token = self.cfg.registry_token.get_secret_value() if self.cfg.registry_token else None
        out: dict[str, ImageInfo] = {}
        by_image: dict[str, ImageInfo] = {}
        for c in self.cfg.containers:
            ref = self.cfg.image(c, tag)
            if ref not in by_image:
                try:
                    digest = manifest_digest(ref, scheme=self.cfg.registry_scheme, token=token,
                                             timeout=self.cfg.request_timeout_s)
                    labels = image_labels(f"{ref.rsplit(':', 1)[0]}@{digest}",
                                          scheme=self.cfg.registry_scheme, token=token,
                                          timeout=self.cfg.request_timeout_s)
                except RegistryError as e:
                    raise StepFailed(self._mask(str(e))) from None
                by_image[ref] = ImageInfo(f"{ref}@{digest}", digest, labels.get(REVISION_LABEL))
                progress(f"{ref} is {digest[:19]}")
            out[key(c)] = by_image[ref]
        return out

    def _labels_of(self, image: str) -> str | None:
        token = self.cfg.registry_token.get_secret_value() if self.cfg.registry_token else None
        name, _, dg = image.partition("@")
        if dg and ":" in name.rsplit("/", 1)[-1]:
            image = f"{name.rsplit(':', 1)[0]}@{dg}"  # repo:tag@digest -> repo@digest
        try:
            return image_labels(image, scheme=self.cfg.registry_scheme, token=token,
                                timeout=self.cfg.request_timeout_s).get(REVISION_LABEL)
        except RegistryError:
            return None

    def current_images(self) -> dict[str, dict[str, Any]]:
        """What each release container runs now (as facts: image, digest, revision label,
        the Deployment's revision); a Deployment that does not exist yet is left out."""
        from kubernetes.client.exceptions import ApiException

        out: dict[str, dict[str, Any]] = {}
        apps = self._apps()
        for c in self.cfg.containers:
            with self.calling(f"reading Deployment {c.deployment}"):
                try:
                    d = apps.read_namespaced_deployment(c.deployment, self.cfg.namespace,
                                                        **self._kw())
                except ApiException as e:
                    if e.status == 404:
                        continue
                    raise
            image = next((x.image for x in d.spec.template.spec.containers
                          if x.name == c.container), None)
            if image is None:
                continue
            info = ImageInfo(image, _digest_of(image), self._labels_of(image))
            out[key(c)] = {**info.as_fact(), "deployment_revision":
                           (d.metadata.annotations or {}).get(REVISION_ANNOTATION)}
        return out

    def previous_images(self, targets: Mapping[str, ImageInfo], progress: Progress
                        ) -> dict[str, dict[str, Any]]:
        """What runs before this deploy, as :meth:`current_images`. A container that already
        runs its target image (a Retry after the bot died mid-rollout) is given the image of
        its Deployment's newest earlier ReplicaSet instead: the revert still goes back."""
        now = self.current_images()
        for k, fact in list(now.items()):
            target = targets.get(k)
            if target is None or fact.get("image") != target.image:
                continue
            earlier = self._earlier_image(k, target.image)
            if earlier is not None:
                progress(f"{k} already runs {target.tag}@{(target.image_id or '')[:19]} (an "
                         f"earlier attempt); its previous revision ran {earlier['image']}")
                now[k] = earlier
            else:
                now.pop(k)
        return now

    def _earlier_image(self, k: str, image: str) -> dict[str, Any] | None:
        dep, _, cname = k.partition("/")
        with self.calling(f"reading Deployment {dep}'s ReplicaSets"):
            d = self._apps().read_namespaced_deployment(dep, self.cfg.namespace, **self._kw())
            selector = ",".join(f"{a}={b}" for a, b in (d.spec.selector.match_labels or {}
                                                        ).items())
            sets = self._apps().list_namespaced_replica_set(
                self.cfg.namespace, label_selector=selector, **self._kw()).items
        history = []
        for rs in sets:
            owners = rs.metadata.owner_references or []
            if not any(o.kind == "Deployment" and o.name == dep for o in owners):
                continue
            rev = (rs.metadata.annotations or {}).get(REVISION_ANNOTATION, "0")
            img = next((c.image for c in rs.spec.template.spec.containers if c.name == cname),
                       None)
            if img and img != image and rev.isdigit():
                history.append((int(rev), img))
        if not history:
            return None
        rev, img = max(history)
        return {**ImageInfo(img, _digest_of(img), self._labels_of(img)).as_fact(),
                "deployment_revision": str(rev)}

    # -- apply ---------------------------------------------------------------------------------
    def rendered(self, images: Mapping[str, str]) -> list[dict[str, Any]]:
        """The manifests with each release container's image replaced (``images``: key ->
        image), in the configured namespace; refused when a configured container is missing."""
        objects = self.manifests()
        seen: set[str] = set()
        for obj in objects:
            meta = obj.setdefault("metadata", {})
            ns = meta.get("namespace")
            if ns and ns != self.cfg.namespace:
                raise StepFailed(f"{obj['kind']}/{meta['name']} names namespace {ns}, but "
                                 f"[target.deployer] namespace is {self.cfg.namespace}")
            if obj.get("kind") != "Deployment":
                continue
            pod = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
            for container in pod.get("containers") or []:
                k = f"{meta['name']}/{container.get('name')}"
                if k in images:
                    container["image"] = images[k]
                    seen.add(k)
        missing = sorted(set(images) - seen)
        if missing:
            raise StepFailed("the manifests have no container " + ", ".join(missing) +
                             " (a Deployment/container named in [target.deployer] containers)")
        return objects

    def apply(self, images: Mapping[str, str], progress: Progress) -> list[str]:
        """Server-side apply of every manifest; the names of the Deployments applied."""
        deployments: list[str] = []
        for obj in self.rendered(images):
            kind, name = obj["kind"], obj["metadata"]["name"]
            with self.calling(f"applying {kind}/{name}"):
                res = self.dyn.resources.get(api_version=obj["apiVersion"], kind=kind)
                if res.namespaced:
                    obj["metadata"]["namespace"] = self.cfg.namespace
                res.server_side_apply(body=obj, name=name,
                                      namespace=self.cfg.namespace if res.namespaced else None,
                                      field_manager=self.cfg.field_manager,
                                      force_conflicts=True, **self._kw())
            progress(f"applied {kind}/{name}")
            if kind == "Deployment":
                deployments.append(name)
        return deployments

    # -- the rollout ---------------------------------------------------------------------------
    def rollout_state(self, name: str) -> tuple[bool, str, Any]:
        """(complete, what it waits for, the Deployment), as ``kubectl rollout status``."""
        with self.calling(f"reading Deployment {name}"):
            d = self._apps().read_namespaced_deployment(name, self.cfg.namespace, **self._kw())
        want = d.spec.replicas if d.spec.replicas is not None else 1
        st = d.status
        if (st.observed_generation or 0) < (d.metadata.generation or 0):
            return False, (f"{name}: waiting for the controller to see generation "
                          f"{d.metadata.generation}"), d
        for cond in st.conditions or []:
            if cond.type == "Progressing" and cond.reason == "ProgressDeadlineExceeded":
                raise StepFailed(f"{name}: rollout exceeded its progress deadline "
                                 f"({cond.message})")
        updated, total = st.updated_replicas or 0, st.replicas or 0
        available = st.available_replicas or 0
        if updated < want:
            return False, f"{name}: {updated} of {want} new replicas updated", d
        if total > updated:
            return False, f"{name}: {total - updated} old replica(s) pending termination", d
        if available < updated:
            return False, f"{name}: {available} of {updated} updated replicas available", d
        return True, (f"{name}: rolled out ({available}/{want} available, revision "
                     f"{(d.metadata.annotations or {}).get(REVISION_ANNOTATION, '?')})"), d

    def wait_rollout(self, names: list[str], deadline: float, progress: Progress) -> None:
        """Until every Deployment has rolled out; at the deadline the pods' reasons."""
        pending = list(dict.fromkeys(names))
        last: dict[str, str] = {}
        while True:
            for name in list(pending):
                done, line, _ = self.rollout_state(name)
                if line != last.get(name):
                    progress(line)
                    last[name] = line
                if done:
                    pending.remove(name)
            if not pending:
                return
            if self.clock() >= deadline:
                reasons = [r for n in pending for r in self.pod_reasons(n)]
                raise StepFailed(
                    f"rollout not complete within {self.cfg.rollout_timeout_s:g} s: "
                    + "; ".join(last[n] for n in pending)
                    + ("\npods: " + "\n".join(reasons) if reasons else ""))
            self.sleep(min(self.cfg.poll_interval_s, max(0.0, deadline - self.clock())))

    def pod_reasons(self, deployment: str | None = None, *, selector: str | None = None
                    ) -> list[str]:
        """Why the pods are not ready: their containers' waiting/terminated reasons and the
        namespace's warning events about them (the newest few)."""
        try:
            with self.calling("reading the pods"):
                if selector is None:
                    d = self._apps().read_namespaced_deployment(deployment, self.cfg.namespace,
                                                                **self._kw())
                    labels = (d.spec.selector.match_labels or {})
                    selector = ",".join(f"{k}={v}" for k, v in labels.items())
                pods = self._core().list_namespaced_pod(self.cfg.namespace,
                                                        label_selector=selector,
                                                        **self._kw()).items
                events = self._core().list_namespaced_event(self.cfg.namespace,
                                                            **self._kw()).items
        except StepFailed as e:
            return [f"(could not read the pods: {e.message})"]
        out: list[str] = []
        names = {p.metadata.name for p in pods}
        for p in pods:
            states = []
            for cs in (p.status.init_container_statuses or []) + \
                    (p.status.container_statuses or []):
                w = cs.state.waiting if cs.state else None
                t = cs.state.terminated if cs.state else None
                if w is not None and w.reason:
                    states.append(f"{cs.name} {w.reason}: {(w.message or '')[:200]}".rstrip(": "))
                elif t is not None and t.exit_code:
                    states.append(f"{cs.name} terminated {t.reason} (exit {t.exit_code})")
                elif cs.last_state and cs.last_state.terminated and cs.restart_count:
                    lt = cs.last_state.terminated
                    states.append(f"{cs.name} restarted {cs.restart_count}x, last {lt.reason} "
                                  f"(exit {lt.exit_code})")
            if not states and p.status.phase != "Running":
                states.append(p.status.phase or "?")
            if states:
                out.append(f"{p.metadata.name}: " + "; ".join(states))
        warnings = [e for e in events if e.type == "Warning"
                    and e.involved_object is not None and e.involved_object.name in names]
        warnings.sort(key=lambda e: str(e.last_timestamp or e.event_time or ""))
        for e in warnings[-5:]:
            out.append(f"event {e.involved_object.name}: {e.reason}: {(e.message or '')[:200]}")
        return [self._mask(line) for line in out]

    # -- migrations ----------------------------------------------------------------------------
    def run_job(self, image: str, command: list[str], *, template_from: str,
                env: Mapping[str, str], timeout: float, what: str, progress: Progress
                ) -> tuple[int, str]:
        """A Job from ``image`` running ``command`` with the pod template of the release
        container ``template_from`` ("deployment/container"): (exit code, its log). ``env``
        travels in a Secret that lives as long as the Job."""
        from kubernetes import client

        dep, _, cname = template_from.partition("/")
        with self.calling(f"reading Deployment {dep}"):
            d = self._apps().read_namespaced_deployment(dep, self.cfg.namespace, **self._kw())
        pod = d.spec.template.spec
        base = next((c for c in pod.containers if c.name == cname), None)
        if base is None:
            raise StepFailed(f"Deployment {dep} has no container {cname}")
        name = f"golive-{what.split()[0]}-{uuid.uuid4().hex[:8]}"
        container = client.V1Container(
            name="migrate", image=image, command=list(command), env=list(base.env or []),
            env_from=list(base.env_from or []), image_pull_policy=base.image_pull_policy)
        core, batch = self._core(), self._batch()
        if env:
            with self.calling(f"creating Secret {name}"):
                core.create_namespaced_secret(self.cfg.namespace, client.V1Secret(
                    metadata=client.V1ObjectMeta(name=name, labels=MANAGED_BY),
                    string_data=dict(env)), **self._kw())
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
            with self.calling(f"creating Job {name}"):
                batch.create_namespaced_job(self.cfg.namespace, job, **self._kw())
            progress(f"Job {name}: {' '.join(command[:4])}…")
            deadline = self.clock() + timeout
            while True:
                with self.calling(f"reading Job {name}"):
                    st = batch.read_namespaced_job(name, self.cfg.namespace,
                                                   **self._kw()).status
                if st.succeeded or st.failed:
                    break
                if self.clock() >= deadline:
                    reasons = self.pod_reasons(selector=f"golive/job={name}")
                    raise StepFailed(f"{what}: Job {name} did not finish within "
                                     f"{timeout:g} s" + ("\npods: " + "\n".join(reasons)
                                                         if reasons else ""))
                self.sleep(min(self.cfg.poll_interval_s, max(0.0, deadline - self.clock())))
            log, code = self._job_log(name)
            return (0 if st.succeeded else (code or 1)), self._mask(log)
        finally:
            with contextlib.suppress(StepFailed), self.calling(f"deleting Job {name}"):
                batch.delete_namespaced_job(name, self.cfg.namespace,
                                            propagation_policy="Background", **self._kw())
            if env:
                with contextlib.suppress(StepFailed), self.calling(f"deleting Secret {name}"):
                    core.delete_namespaced_secret(name, self.cfg.namespace, **self._kw())

    def _job_log(self, name: str) -> tuple[str, int | None]:
        with self.calling(f"reading Job {name}'s pod"):
            pods = self._core().list_namespaced_pod(
                self.cfg.namespace, label_selector=f"golive/job={name}", **self._kw()).items
        if not pods:
            return "", None
        p = pods[0]
        code = None
        for cs in p.status.container_statuses or []:
            if cs.state and cs.state.terminated:
                code = cs.state.terminated.exit_code
        try:
            with self.calling(f"reading Job {name}'s log"):
                log = self._core().read_namespaced_pod_log(p.metadata.name, self.cfg.namespace,
                                                           **self._kw())
        except StepFailed as e:
            log = f"(no log: {e.message})"
        if code is None and not log:
            log = "\n".join(self.pod_reasons(selector=f"golive/job={name}"))
        return log or "", code

    # -- config check --------------------------------------------------------------------------
    def access_review(self) -> list[tuple[bool, str]]:
        """The cluster answers, the namespace exists, and a SelfSubjectAccessReview per verb
        and resource the deployer needs: (ok, line) each."""
        from kubernetes import client

        ns = self.cfg.namespace
        with self.calling("asking the API server its version"):
            version = client.VersionApi(self.api).get_code(**self._kw())
        out = [(True, f"Kubernetes API server {self.server} answers ({version.git_version})")]
        try:
            with self.calling(f"reading namespace {ns}"):
                self._core().read_namespace(ns, **self._kw())
            out.append((True, f"namespace {ns} exists"))
        except StepFailed as e:
            if " 404 " in e.message:
                out.append((False, (f"namespace {ns} does not exist: create it (`kubectl "
                                   f"create namespace {ns}`)")))
            elif " 403 " in e.message:  # a namespaced Role cannot grant reading namespaces
                out.append((True, (f"namespace {ns}: the bot may not read namespaces (a "
                                  "cluster-scoped permission it does not need); not checked")))
            else:
                out.append((False, e.message))
        needed = list(NEEDED_ACCESS)
        try:
            for verb, group, resource in self._applied_resources():
                if (verb, group, resource) not in needed:
                    needed.append((verb, group, resource))
        except StepFailed as e:
            out.append((False, e.message))
        auth = client.AuthorizationV1Api(self.api)
        denied = []
        for verb, group, resource in needed:
            res, _, sub = resource.partition("/")
            review = client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(
                resource_attributes=client.V1ResourceAttributes(
                    namespace=ns, verb=verb, group=group, resource=res,
                    subresource=sub or None)))
            with self.calling("asking a SelfSubjectAccessReview"):
                allowed = auth.create_self_subject_access_review(
                    review, **self._kw()).status.allowed
            if not allowed:
                denied.append(f"{verb} {group + '/' if group else ''}{resource}")
        if denied:
            out.append((False, (f"in namespace {ns} the bot may not: {', '.join(denied)}; "
                               "grant them (deploy/k8s-rbac.yaml)")))
        else:
            out.append((True, (f"in namespace {ns} the bot may do the {len(needed)} things "
                              "the deployer needs")))
        return out

    def _applied_resources(self) -> list[tuple[str, str, str]]:
        """("patch", group, plural) and ("get", ...) for every kind the manifests hold."""
        out = []
        for obj in self.manifests():
            with self.calling(f"looking up {obj['kind']}"):
                res = self.dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
            out += [("patch", res.group or "", res.name), ("get", res.group or "", res.name)]
        return out


def _api_message(e: Any) -> str:
    import json

    try:
        return str(json.loads(e.body).get("message", ""))[:300]
    except (TypeError, ValueError, AttributeError):
        return str(e.body or "")[:300]


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
        code, log = self.deployer.run_job(
            self._image(c), command, template_from=key(c), env=job_env(self.cfg),
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
