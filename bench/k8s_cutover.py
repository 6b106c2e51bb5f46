"""The whole v1 -> v2 cutover on the Kubernetes cluster through golive (the bot and the sandbox
Slack) vs the same operations run directly with the client; and the rollback to traffic
re-opened.

Run:  .venv/bin/python bench/k8s_cutover.py [--iterations N]

Needs the cluster of .ci/k8s-up.sh (admin kubeconfig /var/lib/golive-k8s/admin.kubeconfig, or
GOLIVE_K8S_KUBECONFIG), the local registry with paybox/app and paybox/edge v1 and v2 and the
PostgreSQL of CI. It creates a namespace, a ledger database, a bot database and free ports of
its own and removes them at the end.

Per iteration, alternating which goes first, after an untimed reset (schema downgraded to
0001_ledger by a Job, the manifests applied on v1, maintenance off, the bot's state emptied):
* bot: a fresh bot (tests/support/harness.Bot) driven as tests/k8s/test_deployer_night.py
  does: start, maintenance on (override, approved), deploy v2 (approved), migrate, health,
  smoke, traffic open (approved). Timed from the first slash command to the traffic-open card
  showing "succeeded". Then the rollback from #incident (approved), timed from the command to
  the "Rollback of run #1: completed" timeline (v1 re-applied, schema downgraded, traffic
  re-opened);
* direct: maintenance on + the 503 page, the registry's digest of v2 (one HEAD), server-side
  apply of the manifests with v2 pinned by digest, polling the Deployments every 0.1 s until
  rolled out, a Job running `alembic upgrade head` from that image (polled every 0.1 s, its log
  read), health / admin login / dashboard, the smoke script, maintenance off + public health.
Writes bench/results/k8s_cutover.json with the medians, the overhead and the ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx
from kubernetes import client

from bench.k8s_common import IMAGES, KUBECONFIG, bench_namespace, digest, direct, save, until
from bot.ids import Action
from runbook.adapters.kubernetes.deployer import KubernetesDeployer
from runbook.adapters.kubernetes.jobs import KubernetesJobMigrator
from tests.k8s.fixtures_deploy import Stack, render
from tests.support import pg
from tests.support.harness import BASE_CONFIG, Bot, text_of
from tests.support.paybox_env import PAYBOX, REGISTRY, free_port
from tests.support.toml_out import target_table

RESULTS = ROOT / "bench" / "results" / "k8s_cutover.json"
DONE = ("succeeded", "failed", "interrupted")


def reset(stack: Stack, api: Any, bot_db: str) -> None:
    """Untimed: schema 0001 (a Job from what runs), v1 applied and rolled out, maintenance
    off, the bot's state emptied."""
    target = stack.target()
    dep = KubernetesDeployer(target.deployer, clock=time.monotonic, sleep=time.sleep)
    migrator = KubernetesJobMigrator(target.migrations, dep, {}, lambda: 180.0)
    images = dep.current_images()
    if images and ":v2@" in images["app/app"]["image"]:
        migrator.downgrade("0001_ledger")
    direct(api, stack.namespace, stack.manifests, "v1")
    migrator.upgrade("0001_ledger")  # the first time: the ledger v1 runs on
    httpx.post(f"http://127.0.0.1:{stack.edge_port}/ops/maintenance", json={"enabled": False},
               headers={"X-Ops-Token": stack.ops_token}, timeout=10)
    pg.reset_state(bot_db)


def run_job(api: Any, ns: str, image: str) -> str:
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    name = f"bench-migrate-{uuid.uuid4().hex[:6]}"
    batch.create_namespaced_job(ns, client.V1Job(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1JobSpec(backoff_limit=0, ttl_seconds_after_finished=60,
                              template=client.V1PodTemplateSpec(spec=client.V1PodSpec(
                                  restart_policy="Never", host_network=True,
                                  containers=[client.V1Container(
                                      name="migrate", image=image,
                                      command=["alembic", "upgrade", "head"],
                                      env_from=[client.V1EnvFromSource(
                                          secret_ref=client.V1SecretEnvSource(
                                              name="paybox-secrets"))])])))))
    while True:
        s = batch.read_namespaced_job(name, ns).status
        if s.succeeded:
            break
        assert not s.failed, f"migration Job {name} failed"
        time.sleep(0.1)
    pod = core.list_namespaced_pod(ns, label_selector=f"job-name={name}").items[0]
    return core.read_namespaced_pod_log(pod.metadata.name, ns)


def run_direct(stack: Stack, api: Any) -> float:
    edge, app = f"http://127.0.0.1:{stack.edge_port}", f"http://127.0.0.1:{stack.app_port}"
    tok = {"X-Ops-Token": stack.ops_token}
    http = httpx.Client(timeout=10)
    t0 = time.monotonic()
    assert http.post(f"{edge}/ops/maintenance", json={"enabled": True},
                     headers=tok).status_code == 200
    until(lambda: http.get(edge + "/").status_code == 503, "maintenance page")
    direct(api, stack.namespace, stack.manifests, "v2")
    run_job(api, stack.namespace, f"{REGISTRY}/paybox/app:v2@{digest('v2')}")

    def health_ok() -> bool:
        b = http.get(app + "/api/health").json()
        return b.get("version") == "v2" and b.get("schema") == "0002_payout_idempotency"
    until(health_ok, "health v2/0002")
    login = http.post(app + "/admin/login", data={"username": "admin",
                                                  "password": stack.admin_password})
    assert login.status_code == 200
    assert "<title>Paybox Dashboard</title>" in http.get(app + "/dashboard").text
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    env.update({"PAYBOX_ADMIN_USER": "admin", "PAYBOX_ADMIN_PASSWORD": stack.admin_password,
                "PAYBOX_SMOKE_BYPASS_TOKEN": stack.ops_token, "PAYBOX_EXPECT_VERSION": "v2"})
    s = subprocess.run(["bash", str(PAYBOX / "scripts" / "go_live_smoke.sh"), edge], env=env,
                       capture_output=True, text=True, timeout=120, check=False)
    assert s.returncode == 0, s.stdout + s.stderr
    assert http.post(f"{edge}/ops/maintenance", json={"enabled": False},
                     headers=tok).status_code == 200
    until(lambda: http.get(edge + "/api/health").status_code == 200, "public health")
    total = time.monotonic() - t0
    http.close()
    return total


def run_bot(stack: Stack, bot_db: str, tmp: Path) -> tuple[float, float]:
    bot = Bot(bot_db, tmp, config=target_table(stack.night_target()) + BASE_CONFIG)
    try:
        bot.command("alice", "help")  # warm the HTTP path, untimed

        def step(text: str, title: str, approver: str | None) -> None:
            card = bot.request("alice", text, contains=title,
                               reply="Approval requested" if approver else "Queued")
            if approver:
                bot.sandbox.click(approver, card, action_id=Action.APPROVE)
            done = text_of(bot.card_showing(card, *DONE, timeout=240))
            assert "succeeded" in done, done
        t0 = time.monotonic()
        assert "started cutover run" in bot.command(
            "alice", f"start v2 {IMAGES['app:v2']['revision']}")
        step('maintenance on --override "bench"', "Maintenance mode on", "bob")
        step("deploy v2", "Deploy", "carol")
        step("migrate", "Migrations", None)
        step("health", "Health", None)
        step("smoke", "Smoke", None)
        step("traffic open", "Open traffic", "bob")
        cutover = time.monotonic() - t0
        assert httpx.get(f"http://127.0.0.1:{stack.edge_port}/api/health").json()[
            "version"] == "v2"
        after = bot.seq()
        t1 = time.monotonic()
        assert "Rollback requested" in bot.command("alice", "rollback bench",
                                                   channel="C_INCIDENT")
        card = bot.workspace.wait_for_message(
            "C_INCIDENT", contains="Rollback requested", after_seq=after,
            predicate=lambda m: m.ephemeral_to is None and not m.via_response_url)
        bot.sandbox.click("bob", card, action_id=Action.APPROVE)
        bot.workspace.wait_for_message("C_CUTOVER", contains="Rollback of run #1: completed",
                                       after_seq=after, timeout=300)
        rollback = time.monotonic() - t1
        health = httpx.get(f"http://127.0.0.1:{stack.edge_port}/api/health")
        assert health.status_code == 200 and health.json()["version"] == "v1", health.text
    finally:
        bot.stop()
    return cutover, rollback


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=3)
    args = ap.parse_args()
    bot_db_name, bot_db = pg.create_database("golive_bench_k8s")
    bot_s: list[float] = []
    rollback_s: list[float] = []
    direct_s: list[float] = []
    ops_token, admin_password = f"ops-{uuid.uuid4().hex}", f"pw-{uuid.uuid4().hex}"
    try:
        pg.upgrade(bot_db)
        with bench_namespace("golive-bench-k8s-cutover-", ops_token=ops_token,
                             admin_password=admin_password) as space:
            api, tmp = space.api, space.tmp
            app_port, edge_port = free_port(), free_port()
            stack = Stack(KUBECONFIG, api, space.name,
                          render(tmp / "manifests", app_port=app_port, edge_port=edge_port),
                          app_port, edge_port, space.database_url, ops_token, admin_password)
            for i in range(args.iterations):
                for which in (("bot", "direct") if i % 2 == 0 else ("direct", "bot")):
                    reset(stack, api, bot_db)
                    if which == "bot":
                        run_tmp = tmp / f"bot-{i}"
                        run_tmp.mkdir()
                        cut, rb = run_bot(stack, bot_db, run_tmp)
                        bot_s.append(round(cut, 3))
                        rollback_s.append(round(rb, 3))
                        print(f"iteration {i + 1} bot: cutover {cut:.2f} s, rollback "
                              f"{rb:.2f} s", flush=True)
                    else:
                        direct_s.append(round(run_direct(stack, api), 3))
                        print(f"iteration {i + 1} direct: {direct_s[-1]:.2f} s", flush=True)
    finally:
        pg.drop_database(bot_db_name)
    b, d = statistics.median(bot_s), statistics.median(direct_s)
    load = os.getloadavg()
    save(RESULTS, {"iterations": args.iterations, "cpus": os.cpu_count(),
                   "loadavg_at_end": [round(x, 2) for x in load],
                   "bot_cutover_s": bot_s, "direct_cutover_s": direct_s,
                   "bot_median_s": round(b, 2), "direct_median_s": round(d, 2),
                   "overhead_s": round(b - d, 2), "ratio": round(b / d, 2),
                   "within_target": (b - d) <= 2.0 or b / d <= 1.10,
                   "rollback_to_traffic_reopened_s": rollback_s,
                   "rollback_median_s": round(statistics.median(rollback_s), 2)})


if __name__ == "__main__":
    main()
