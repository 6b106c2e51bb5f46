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
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.k8s_common import IMAGES, KUBECONFIG, bench_namespace, direct, save
from runbook.context import StepContext
from runbook.steps import deploy
from runbook.target import TargetConfig
from tests.k8s.fixtures_deploy import render
from tests.support.paybox_env import REGISTRY, free_port

RESULTS = ROOT / "bench" / "results" / "k8s_deploy.json"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=3)
    args = ap.parse_args()
    with bench_namespace("golive-bench-k8s-", ops_token=uuid.uuid4().hex,
                         admin_password=uuid.uuid4().hex) as space:
        api, ns = space.api, space.name
        manifests = render(space.tmp, app_port=free_port(), edge_port=free_port())
        target = TargetConfig.model_validate({"deployer": {
            "kind": "kubernetes", "kubeconfig": KUBECONFIG, "namespace": ns,
            "manifests": str(manifests), "registry": REGISTRY, "registry_scheme": "http",
            "containers": [{"deployment": "app", "container": "app",
                            "repository": "paybox/app"}]}})
        golive_s: list[float] = []
        direct_s: list[float] = []
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
    g, d = statistics.median(golive_s), statistics.median(direct_s)
    save(RESULTS, {"iterations": args.iterations, "golive_s": golive_s, "direct_s": direct_s,
                   "golive_median_s": round(g, 2), "direct_median_s": round(d, 2),
                   "overhead_s": round(g - d, 2), "ratio": round(g / d, 2)})


if __name__ == "__main__":
    main()
