"""Time a v1 -> v2 deploy on the Kubernetes cluster through golive's deploy step vs the same
operations run directly with the client.

Run:  .venv/bin/python bench/k8s_deploy.py [--iterations N]

Needs the cluster of .ci/k8s-up.sh (admin kubeconfig /var/lib/golive-k8s/admin.kubeconfig, or
GOLIVE_K8S_KUBECONFIG), the local registry with paybox/app v1 and v2 and the PostgreSQL of CI.
It creates a namespace, a ledger database and free ports of its own and removes them at the end.

Per iteration, alternating which goes first: the namespace is put back on v1 (untimed), then
timed either
* golive: ``runbook.steps.deploy.run`` with tag v2 (registry digest and revision label, the
  revision check against the RC sha, previous images, server-side apply of the manifests, the
  rollout wait with its progress lines, the images read back), or
* direct: the registry's digest for v2 (one HEAD), the same server-side apply with the
  dynamic client, and polling the Deployments every 0.1 s until rolled out.
Writes bench/results/k8s_deploy.json with the medians, their ratio and the git commit.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx
import psycopg
from kubernetes import client, config
from kubernetes.dynamic import DynamicClient

from runbook.context import StepContext
from runbook.steps import deploy
from runbook.target import TargetConfig
from tests.k8s.fixtures_deploy import render
from tests.support.paybox_env import PG_ADMIN_URL, REGISTRY, free_port

KUBECONFIG = os.environ.get("GOLIVE_K8S_KUBECONFIG", "/var/lib/golive-k8s/admin.kubeconfig")
RESULTS = ROOT / "bench" / "results" / "k8s_deploy.json"
IMAGES = json.loads((ROOT / "examples/paybox/build/images.json").read_text())["images"]
ACCEPT = ("application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
          "application/vnd.docker.distribution.manifest.v2+json")


def digest(tag: str) -> str:
    return httpx.head(f"http://{REGISTRY}/v2/paybox/app/manifests/{tag}",
                      headers={"Accept": ACCEPT}).headers["docker-content-digest"]


def direct(api, ns: str, manifests: Path, tag: str) -> None:
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=3)
    args = ap.parse_args()
    api = config.new_client_from_config(config_file=KUBECONFIG)
    core = client.CoreV1Api(api)
    tag = uuid.uuid4().hex[:6]
    ns, db = f"golive-bench-{tag}", f"paybox_bench_{tag}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{db}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{db}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    tmp = Path(tempfile.mkdtemp(prefix="golive-bench-k8s-"))
    manifests = render(tmp, app_port=free_port(), edge_port=free_port())
    while True:
        try:
            core.read_namespaced_service_account("default", ns)
            break
        except client.ApiException:
            time.sleep(0.2)
    core.create_namespaced_secret(ns, client.V1Secret(
        metadata=client.V1ObjectMeta(name="paybox-secrets"),
        string_data={"PAYBOX_DATABASE_URL": url, "PAYBOX_OPS_TOKEN": uuid.uuid4().hex,
                     "PAYBOX_ADMIN_PASSWORD": uuid.uuid4().hex,
                     "PAYBOX_WEBHOOK_SECRET": uuid.uuid4().hex}))
    target = TargetConfig.model_validate({"deployer": {
        "kind": "kubernetes", "kubeconfig": KUBECONFIG, "namespace": ns,
        "manifests": str(manifests), "registry": REGISTRY, "registry_scheme": "http",
        "containers": [{"deployment": "app", "container": "app", "repository": "paybox/app"}]}})
    golive_s: list[float] = []
    direct_s: list[float] = []
    try:
        for i in range(args.iterations):
            for which in (("golive", "direct") if i % 2 == 0 else ("direct", "golive")):
                direct(api, ns, manifests, "v1")  # untimed reset
                t0 = time.perf_counter()
                if which == "golive":
                    lines: list[str] = []
                    deploy.run(StepContext(1, "deploy", {"tag": "v2"},
                                           {"rc_sha": IMAGES["app:v2"]["revision"]}, target,
                                           lines.append, time.monotonic() + 300))
                    golive_s.append(time.perf_counter() - t0)
                else:
                    direct(api, ns, manifests, "v2")
                    direct_s.append(time.perf_counter() - t0)
                print(f"iteration {i + 1} {which}: {time.perf_counter() - t0:.2f} s", flush=True)
    finally:
        core.delete_namespace(ns)
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    g, d = statistics.median(golive_s), statistics.median(direct_s)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            check=False, capture_output=True, text=True).stdout.strip()
    out = {"commit": commit, "iterations": args.iterations, "golive_s": golive_s,
           "direct_s": direct_s, "golive_median_s": round(g, 2), "direct_median_s": round(d, 2),
           "overhead_s": round(g - d, 2), "ratio": round(g / d, 2)}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
