"""The single-node Kubernetes cluster of ``.ci/k8s-up.sh``: its admin kubeconfig, an API
client, and a fresh namespace per test (deleted after it).

The cluster is real (kube-apiserver, controller-manager, scheduler, kubelet on containerd,
pulling from the local registry); tests create what they need in their own namespace, so
they run in parallel under pytest-xdist. No cluster fails the tests (never skips): run
``bash .ci/k8s-up.sh`` first. ``GOLIVE_K8S_KUBECONFIG`` points at another cluster's kubeconfig.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from tests.support.paybox_env import worker_tag
from tests.support.poll import wait_until

DEFAULT_KUBECONFIG = "/var/lib/golive-k8s/admin.kubeconfig"  # written by .ci/k8s-up.sh


@pytest.fixture(scope="session")
def k8s_kubeconfig() -> str:
    """The admin kubeconfig's path, once the API server answers with it."""
    path = os.environ.get("GOLIVE_K8S_KUBECONFIG", DEFAULT_KUBECONFIG)
    if not Path(path).is_file():
        pytest.fail(f"no kubeconfig at {path}: the cluster is not up (run `bash .ci/k8s-up.sh`)")
    try:
        api = config.new_client_from_config(config_file=path)
        with api:
            client.VersionApi(api).get_code(_request_timeout=5)
    except Exception as exc:  # noqa: BLE001 - any failure means the same thing here
        pytest.fail(f"Kubernetes API not answering with {path} (run `bash .ci/k8s-up.sh`): "
                    f"{type(exc).__name__}: {exc}")
    return path


@pytest.fixture(scope="session")
def k8s_api(k8s_kubeconfig: str) -> Iterator[client.ApiClient]:
    """An API client (admin) for the session; wrap it: ``client.CoreV1Api(k8s_api)``."""
    api = config.new_client_from_config(config_file=k8s_kubeconfig)
    with api:
        yield api


@pytest.fixture
def k8s_namespace(k8s_api: client.ApiClient) -> Iterator[str]:
    """A fresh namespace for this test (``golive-t-<worker>-<hex>``), deleted after it with
    everything in it (in the background: the next test does not wait for pods to stop)."""
    core = client.CoreV1Api(k8s_api)
    name = f"golive-t-{worker_tag()}-{secrets.token_hex(4)}".lower()
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(
        name=name, labels={"golive.test/namespace": "true"})))
    # Pods need the namespace's default service account, which the controller-manager adds.
    def has_default_sa() -> bool:
        try:
            core.read_namespaced_service_account("default", name)
            return True
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise

    wait_until(f"service account default in {name}", has_default_sa, timeout=30)
    yield name
    try:
        core.delete_namespace(name, propagation_policy="Background")
    except ApiException as exc:
        if exc.status != 404:
            raise
