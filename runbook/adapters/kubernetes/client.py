"""The Kubernetes API as the deployer uses it: an ``ApiClient`` for the configured kubeconfig,
context or service account; every client error turned into one clear :class:`StepFailed`; the
team's manifests read from disk; and why a set of pods is not ready (for the rollout's and the
Jobs' time-outs)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from runbook.adapters.redact import mask
from runbook.errors import StepFailed
from runbook.target_deployers import KubernetesDeployerConfig


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


class KubeClient:
    """The API client for one namespace, with the clock and sleep its waits poll by."""

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


def _api_message(e: Any) -> str:
    import json

    try:
        return str(json.loads(e.body).get("message", ""))[:300]
    except (TypeError, ValueError, AttributeError):
        return str(e.body or "")[:300]
