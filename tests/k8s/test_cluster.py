"""The cluster of .ci/k8s-up.sh runs real pods from the local registry.

What a person would check by hand: the node is Ready with the pinned release; a Deployment
of a sample image from 127.0.0.1:5000 becomes available and its process answers HTTP (by pod
IP on the pod network, and on the node's loopback with ``hostNetwork``, which the deployer
uses as the compose stack uses host networking); deleting it stops the pods.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from kubernetes import client

from tests.support.paybox_env import REGISTRY, free_port
from tests.support.poll import wait_until

pytestmark = [pytest.mark.k8s, pytest.mark.docker]

K8S_VERSION = "v1.34.4"  # pinned in .ci/k8s-env.sh
IMAGE_REPO, IMAGE_TAG = "paybox/edge", "v1"  # built into the local registry by docker-up.sh
ROLLOUT_TIMEOUT = 120.0
MANIFEST_TYPES = [  # what containerd accepts, so the registry names the digest it pulled
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
]


def registry_digest(repo: str, tag: str) -> str:
    req = urllib.request.Request(f"http://{REGISTRY}/v2/{repo}/manifests/{tag}", method="HEAD")
    req.add_header("Accept", ", ".join(MANIFEST_TYPES))
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.headers["Docker-Content-Digest"]


def edge_deployment(name: str, port: int, *, host_network: bool = False) -> dict[str, Any]:
    bind = "127.0.0.1" if host_network else "0.0.0.0"
    env = {"PAYBOX_BIND": bind, "PAYBOX_EDGE_PORT": str(port), "PAYBOX_APP_PORT": "1",
           "PAYBOX_OPS_TOKEN": "k8s-smoke", "PAYBOX_EDGE_STATE_DIR": "/tmp"}
    container = {
        "name": "edge", "image": f"{REGISTRY}/{IMAGE_REPO}:{IMAGE_TAG}",
        "env": [{"name": k, "value": v} for k, v in env.items()],
        "readinessProbe": {"httpGet": {"path": "/ops/status", "port": port,
                                       **({"host": "127.0.0.1"} if host_network else {})},
                           "periodSeconds": 1},
    }
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"hostNetwork": host_network, "containers": [container],
                                       "terminationGracePeriodSeconds": 2}}},
    }


def wait_available(apps: client.AppsV1Api, ns: str, name: str) -> client.V1Deployment:
    def available() -> client.V1Deployment | None:
        d = apps.read_namespaced_deployment(name, ns)
        s = d.status
        done = (s.observed_generation == d.metadata.generation
                and s.updated_replicas == 1 and s.available_replicas == 1)
        return d if done else None

    try:
        return wait_until(f"deployment {ns}/{name} available", available, timeout=ROLLOUT_TIMEOUT)
    except AssertionError as exc:  # say why: the pods' waiting reasons and the last events
        core = client.CoreV1Api(apps.api_client)
        why = [f"{p.metadata.name}: {p.status.phase} "
               + "; ".join(f"{c.state.waiting.reason}: {c.state.waiting.message}"
                           for c in p.status.container_statuses or [] if c.state.waiting)
               for p in core.list_namespaced_pod(ns).items]
        events = [f"{e.reason}: {e.message}" for e in core.list_namespaced_event(ns).items][-5:]
        raise AssertionError(f"{exc}\npods: {why}\nevents: {events}") from None


def get_json(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return json.loads(resp.read())
    except (urllib.error.URLError, OSError):
        return None


def test_node_is_ready_with_the_pinned_release(k8s_api: client.ApiClient) -> None:
    nodes = client.CoreV1Api(k8s_api).list_node().items
    assert len(nodes) == 1
    node = nodes[0]
    ready = {c.type: c.status for c in node.status.conditions}["Ready"]
    assert ready == "True"
    assert node.status.node_info.kubelet_version == K8S_VERSION
    assert node.status.node_info.container_runtime_version.startswith("containerd://")
    assert client.VersionApi(k8s_api).get_code().git_version == K8S_VERSION


def test_deployment_from_the_local_registry_runs_real_pods(
        k8s_api: client.ApiClient, k8s_namespace: str) -> None:
    apps, core = client.AppsV1Api(k8s_api), client.CoreV1Api(k8s_api)
    apps.create_namespaced_deployment(k8s_namespace, edge_deployment("edge", 8080))
    wait_available(apps, k8s_namespace, "edge")

    (pod,) = core.list_namespaced_pod(k8s_namespace, label_selector="app=edge").items
    (status,) = pod.status.container_statuses
    assert status.ready
    # the very image the local registry serves, pulled by the node's containerd
    want = registry_digest(IMAGE_REPO, IMAGE_TAG)
    assert status.image_id == f"{REGISTRY}/{IMAGE_REPO}@{want}"
    # the container's process answers on the pod network, from this machine
    url = f"http://{pod.status.pod_ip}:8080/ops/status"
    body = get_json(url)
    assert body is not None and body["edge_version"] == IMAGE_TAG

    apps.delete_namespaced_deployment("edge", k8s_namespace)
    wait_until("edge pods gone", lambda: not core.list_namespaced_pod(
        k8s_namespace, label_selector="app=edge").items, timeout=60)
    assert get_json(url) is None


def test_host_network_pod_answers_on_loopback(
        k8s_api: client.ApiClient, k8s_namespace: str) -> None:
    apps = client.AppsV1Api(k8s_api)
    port = free_port()
    apps.create_namespaced_deployment(
        k8s_namespace, edge_deployment("edge-host", port, host_network=True))
    wait_available(apps, k8s_namespace, "edge-host")
    body = get_json(f"http://127.0.0.1:{port}/ops/status")
    assert body is not None and body["edge_version"] == IMAGE_TAG

    apps.delete_namespaced_deployment("edge-host", k8s_namespace)
    wait_until("the host-network edge stops answering",
               lambda: get_json(f"http://127.0.0.1:{port}/ops/status") is None, timeout=60)
