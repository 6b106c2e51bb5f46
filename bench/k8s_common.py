"""What the Kubernetes benchmarks (k8s_deploy.py, k8s_cutover.py) share: the cluster's
kubeconfig, a namespace of their own with a ledger database and the sample's secrets (removed
at the end), the registry's digest of a paybox/app tag, the direct (client-only) apply and
rollout wait, and the results file.

Needs the cluster of .ci/k8s-up.sh (admin kubeconfig /var/lib/golive-k8s/admin.kubeconfig, or
GOLIVE_K8S_KUBECONFIG), the local registry with the paybox images and the PostgreSQL of CI.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
from kubernetes import client, config
from kubernetes.dynamic import DynamicClient

from bench.common import ROOT, write_results
from tests.support.paybox_env import PG_ADMIN_URL, REGISTRY

KUBECONFIG = os.environ.get("GOLIVE_K8S_KUBECONFIG", "/var/lib/golive-k8s/admin.kubeconfig")
IMAGES = json.loads((ROOT / "examples/paybox/build/images.json").read_text())["images"]
ACCEPT = ("application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
          "application/vnd.docker.distribution.manifest.v2+json")


def digest(tag: str) -> str:
    return httpx.head(f"http://{REGISTRY}/v2/paybox/app/manifests/{tag}",
                      headers={"Accept": ACCEPT}).headers["docker-content-digest"]


def until(check: Any, what: str, limit: float = 120.0) -> None:
    deadline = time.monotonic() + limit
    while True:
        try:
            if check():
                return
        except (httpx.HTTPError, client.ApiException):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {limit:.0f} s")
        time.sleep(0.05)


def direct(api: Any, ns: str, manifests: Path, tag: str) -> None:
    """paybox/app ``tag`` pinned by digest, server-side applied with the dynamic client, then
    the Deployments polled every 0.1 s until rolled out (no golive code)."""
    import yaml

    image = f"{REGISTRY}/paybox/app:{tag}@{digest(tag)}"
    dyn = DynamicClient(api)
    docs = list(yaml.safe_load_all(next(manifests.glob("*.yaml")).read_text()))
    names = []
    for d in docs:
        if d["metadata"]["name"] == "app":
            d["spec"]["template"]["spec"]["containers"][0]["image"] = image
        res = dyn.resources.get(api_version=d["apiVersion"], kind=d["kind"])
        res.server_side_apply(body=d, name=d["metadata"]["name"], namespace=ns,
                              field_manager="bench", force_conflicts=True)
        names.append(d["metadata"]["name"])
    apps = client.AppsV1Api(api)
    while True:
        done = 0
        for n in names:
            d = apps.read_namespaced_deployment(n, ns)
            s, want = d.status, d.spec.replicas
            if (s.observed_generation or 0) >= d.metadata.generation and \
                    (s.updated_replicas or 0) == want and (s.replicas or 0) == want and \
                    (s.available_replicas or 0) == want:
                done += 1
        if done == len(names):
            return
        time.sleep(0.1)


@dataclass
class BenchNamespace:
    api: Any
    core: Any
    name: str
    database_url: str
    """The ledger database the sample app runs on (PAYBOX_DATABASE_URL)."""
    tmp: Path


@contextmanager
def bench_namespace(tmp_prefix: str, *, ops_token: str, admin_password: str
                    ) -> Iterator[BenchNamespace]:
    """A fresh namespace and ledger database, the namespace's default service account there and
    the ``paybox-secrets`` Secret the manifests read; both removed at the end."""
    api = config.new_client_from_config(config_file=KUBECONFIG)
    core = client.CoreV1Api(api)
    tag = uuid.uuid4().hex[:6]
    ns, db = f"golive-bench-{tag}", f"paybox_bench_{tag}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{db}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{db}"
    try:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
        try:
            until(lambda: core.read_namespaced_service_account("default", ns), "default SA",
                  30)
            core.create_namespaced_secret(ns, client.V1Secret(
                metadata=client.V1ObjectMeta(name="paybox-secrets"),
                string_data={"PAYBOX_DATABASE_URL": url, "PAYBOX_OPS_TOKEN": ops_token,
                             "PAYBOX_ADMIN_PASSWORD": admin_password,
                             "PAYBOX_WEBHOOK_SECRET": uuid.uuid4().hex}))
            yield BenchNamespace(api, core, ns, url, Path(tempfile.mkdtemp(prefix=tmp_prefix)))
        finally:
            core.delete_namespace(ns)
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def save(path: Path, out: dict[str, Any]) -> None:
    """``out`` with the short commit first, written to ``path`` and printed."""
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            check=False, capture_output=True, text=True).stdout.strip()
    out = {"commit": commit, **out}
    write_results(path, out)
    print(json.dumps(out, indent=2))
