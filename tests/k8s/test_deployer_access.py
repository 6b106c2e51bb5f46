"""`golive config check` with a Kubernetes deployer, as the bot's own service account: the
SelfSubjectAccessReviews say exactly what deploy/k8s-rbac.yaml grants and what is missing."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from runbook.adapters.kubernetes.deployer import KubernetesDeployer
from runbook.target import TargetConfig

pytestmark = [pytest.mark.k8s]

ROOT = Path(__file__).resolve().parents[2]


def grant(api: Any, ns: str, drop: str | None = None) -> None:
    """deploy/k8s-rbac.yaml in ``ns`` (minus the rule for resource ``drop``)."""
    from kubernetes import client

    docs = list(yaml.safe_load_all((ROOT / "deploy/k8s-rbac.yaml").read_text()))
    for d in docs:
        d["metadata"]["namespace"] = ns
        for s in d.get("subjects", []):
            s["namespace"] = ns
    sa, role, binding = docs
    if drop:
        role["rules"] = [r for r in role["rules"] if drop not in r["resources"]]
    client.CoreV1Api(api).create_namespaced_service_account(ns, sa)
    rbac = client.RbacAuthorizationV1Api(api)
    rbac.create_namespaced_role(ns, role)
    rbac.create_namespaced_role_binding(ns, binding)


def kubeconfig_for_sa(api: Any, admin_kubeconfig: str, ns: str, dest: Path) -> Path:
    """A kubeconfig that authenticates as the ``golive`` service account (a bound token)."""
    from kubernetes import client

    token = client.CoreV1Api(api).create_namespaced_service_account_token(
        "golive", ns, client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(expiration_seconds=600))).status.token
    admin = yaml.safe_load(Path(admin_kubeconfig).read_text())
    cluster = admin["clusters"][0]["cluster"]
    ca = Path(cluster["certificate-authority"]).read_bytes() \
        if "certificate-authority" in cluster else base64.b64decode(
            cluster["certificate-authority-data"])
    dest.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "c", "cluster": {
            "server": cluster["server"],
            "certificate-authority-data": base64.b64encode(ca).decode()}}],
        "users": [{"name": "golive", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "c", "user": "golive"}}]}))
    return dest


def review(kubeconfig: Path, ns: str) -> list[tuple[bool, str]]:
    t = TargetConfig.model_validate({"deployer": {
        "kind": "kubernetes", "kubeconfig": str(kubeconfig), "namespace": ns,
        "manifests": str(ROOT / "examples/paybox/k8s/paybox.yaml"),
        "containers": [{"deployment": "app", "container": "app", "repository": "paybox/app"}],
        "registry": "127.0.0.1:5000"}})
    return KubernetesDeployer(t.deployer, clock=time.monotonic, sleep=time.sleep).access_review()


def test_the_rbac_manifest_grants_what_the_deployer_needs(
        k8s_api: Any, k8s_kubeconfig: str, k8s_namespace: str, tmp_path: Path):
    grant(k8s_api, k8s_namespace)
    lines = review(kubeconfig_for_sa(k8s_api, k8s_kubeconfig, k8s_namespace,
                                     tmp_path / "sa.kubeconfig"), k8s_namespace)
    assert all(ok for ok, _ in lines), lines
    assert any("may do the" in line for _, line in lines), lines


def test_a_missing_permission_is_named(
        k8s_api: Any, k8s_kubeconfig: str, k8s_namespace: str, tmp_path: Path):
    grant(k8s_api, k8s_namespace, drop="pods/log")
    lines = review(kubeconfig_for_sa(k8s_api, k8s_kubeconfig, k8s_namespace,
                                     tmp_path / "sa.kubeconfig"), k8s_namespace)
    bad = [line for ok, line in lines if not ok]
    assert len(bad) == 1 and "may not: get pods/log" in bad[0], lines
    assert "deploy/k8s-rbac.yaml" in bad[0]


def test_a_namespace_that_does_not_exist_is_said(k8s_kubeconfig: str):
    lines = review(Path(k8s_kubeconfig), "golive-no-such-namespace")
    assert (False, ("namespace golive-no-such-namespace does not exist: create it "
                   "(`kubectl create namespace golive-no-such-namespace`)")) in lines
