"""Watch benchmarks: log-tail throughput at < 1 s lag, and the overhead of all five watches.

1. Log tail: a separate writer process appends paybox-like log lines to a file at a fixed
   rate (stepped up); the webhook and error-budget counters read it through one ``LogTail``
   (the same classifiers as the real watches). Each line carries its write time; lag = time
   counted - time written. A rate is kept up with when the p99 lag stays under 1 s and the
   tail finishes counting within 1 s of the writer stopping.
2. Overhead: the paybox app runs on the host (its own database, log to a file), Prometheus
   scrapes it when installed, a separate process sends ~50 req/s; all five watches run on an
   APScheduler BackgroundScheduler at 1 s intervals in this process. Reported: this process's
   CPU (user+sys) per second and its RSS growth, against the same process idle.

    .venv/bin/python bench/watches.py [--rates 10000,20000,40000,80000] [--seconds 5]
                                      [--overhead-seconds 30] [--out PATH]

Detection latency (fault injected -> channel message) needs the bot's shell and is not here.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runbook.watches.config import ErrorBudgetWatchConfig, WebhookWatchConfig
from runbook.watches.logs import (
    LineCounter,
    LogTail,
    file_opener,
    pattern_classifier,
    status_classifier,
)

WRITER = r"""
import sys, time
path, rate, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
lines = ["paybox access POST /webhooks/psp 200 0.4ms", "paybox webhook psp event=payout.paid/evt_1 Signature Verified",
         "paybox access GET /api/accounts 200 1.1ms", "paybox access POST /api/payouts 500 2.0ms"]
with open(path, "a", buffering=1 << 20) as f:
    t0 = time.time(); sent = 0
    while True:
        now = time.time()
        if now - t0 >= seconds:
            break
        due = int((now - t0) * rate)
        if due > sent:
            stamp = "%.6f" % now
            f.write("".join("%s %s\n" % (stamp, lines[(sent + i) & 3]) for i in range(due - sent)))
            f.flush(); sent = due
        time.sleep(0.005)
    print(sent)
"""


class LagProbe:
    """A tail subscriber that records, per chunk, how old its newest line is."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.lines = 0

    def feed(self, lines: list[str], at: float) -> None:
        self.lines += len(lines)
        stamp = lines[-1].split(" ", 1)[0]
        try:
            self.lags.append(at - float(stamp))
        except ValueError:
            pass


def log_tail_run(rate: float, seconds: float) -> dict:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "app.log"
        path.touch()
        tail = LogTail("bench", file_opener(path), reconnect_max_s=0.2)
        wh, eb = WebhookWatchConfig(), ErrorBudgetWatchConfig()
        tail.subscribe(LineCounter(pattern_classifier({
            "verified": wh.verified_pattern, "failed": wh.failure_pattern,
            "traffic": wh.traffic_pattern})))
        tail.subscribe(LineCounter(status_classifier(eb.status_pattern)))
        probe = LagProbe()
        tail.subscribe(probe)  # type: ignore[arg-type]
        tail.start()
        while not tail.connected:
            time.sleep(0.01)
        cpu0 = time.process_time()
        out = subprocess.run([sys.executable, "-c", WRITER, str(path), str(rate), str(seconds)],
                             capture_output=True, text=True, check=True)
        written = int(out.stdout.strip())
        t_end = time.monotonic()
        while probe.lines < written and time.monotonic() - t_end < 10:
            time.sleep(0.005)
        drain = time.monotonic() - t_end
        cpu = time.process_time() - cpu0
        tail.stop()
    lags = sorted(probe.lags) or [float("inf")]
    p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))]
    kept_up = probe.lines >= written and p99 < 1.0 and drain < 1.0
    return {"rate_lines_per_s": rate, "written": written, "counted": probe.lines,
            "lag_p50_s": round(statistics.median(lags), 4), "lag_p99_s": round(p99, 4),
            "lag_max_s": round(lags[-1], 4), "drain_after_stop_s": round(drain, 3),
            "tail_cpu_s_per_s": round(cpu / seconds, 3), "kept_up": kept_up}


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def overhead(seconds: float) -> dict:
    import psycopg
    from apscheduler.schedulers.background import BackgroundScheduler

    from bot.team_config import Thresholds
    from runbook.watches.config import WatchesConfig
    from runbook.watches.watchset import WatchSet
    from tests.support.paybox_env import PG_ADMIN_URL, free_port
    from tests.support.paybox_target import paybox_target, paybox_watch_sources

    app_dir = ROOT / "examples/paybox/app"
    db = f"golive_bench_watch_{os.getpid()}"
    base = PG_ADMIN_URL.rpartition("/")[0]
    url = f"{base}/{db}"
    procs: list[subprocess.Popen] = []
    tmp = Path(tempfile.mkdtemp(prefix="golive-bench-watch-"))
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{db}"')
    try:
        env = {**os.environ, "PYTHONPATH": str(app_dir), "PAYBOX_DATABASE_URL": url}
        subprocess.run([sys.executable, "-m", "alembic", "upgrade", "head"], cwd=app_dir, env=env,
                       check=True, capture_output=True)
        port = free_port()
        log = tmp / "app.log"
        procs.append(subprocess.Popen([sys.executable, "-m", "paybox"], cwd=app_dir,
                                      env={**env, "PAYBOX_PORT": str(port)},
                                      stdout=log.open("w"), stderr=subprocess.STDOUT))
        app = f"http://127.0.0.1:{port}"
        _wait(lambda: _get(f"{app}/api/health") == 200, "paybox on the host")
        source: dict = {"source": "logs", "logs": {"kind": "file", "path": str(log)}}
        if shutil.which("prometheus"):
            pport = free_port()
            procs.append(subprocess.Popen(
                ["bash", str(ROOT / "examples/paybox/prometheus.sh"), str(tmp / "prom"),
                 str(pport), str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            _wait(lambda: _get(f"http://127.0.0.1:{pport}/-/ready") == 200, "prometheus")
            source = {"source": "prometheus", "prometheus": {
                "url": f"http://127.0.0.1:{pport}", **paybox_watch_sources()["error_budget"][
                    "prometheus"]}}
        procs.append(subprocess.Popen([sys.executable, "-c", LOAD, app],
                                      stdout=subprocess.DEVNULL))
        every = {"interval_s": 1}
        cfg = WatchesConfig.model_validate({
            "health": {**every, "base": "internal"},
            "webhooks": {**every, "logs": {"kind": "file", "path": str(log)}},
            "error_budget": {**every, **source},
            "payouts": {**every, **paybox_watch_sources()["payouts"]},
            "ledger": {**every, **paybox_watch_sources()["ledger"]}})
        target = paybox_target(app_port=port, database_url=url)
        idle_cpu0, t0 = time.process_time(), time.monotonic()
        time.sleep(min(10.0, seconds / 3))
        idle = (time.process_time() - idle_cpu0) / (time.monotonic() - t0)
        rss0 = _rss_kb()
        ws = WatchSet.from_config(SimpleNamespace(watches=cfg, thresholds=Thresholds(),
                                                  target=target))
        ws.start(datetime.now(UTC))
        ticks: dict[str, int] = dict.fromkeys(ws.watches, 0)
        errors: dict[str, str] = {}

        def job(name: str) -> None:
            state, _ = ws.tick(name, datetime.now(UTC))
            ticks[name] += 1
            if state.last and state.last.phase == "Error":
                errors[name] = state.last.summary

        sched = BackgroundScheduler()
        for name in ws.watches:
            sched.add_job(job, "interval", seconds=1, args=[name], max_instances=1,
                          coalesce=True)
        cpu0, t0 = time.process_time(), time.monotonic()
        sched.start()
        time.sleep(seconds)
        sched.shutdown(wait=True)
        wall = time.monotonic() - t0
        cpu = time.process_time() - cpu0
        rss1 = _rss_kb()
        ws.stop()
        return {"seconds": round(wall, 1), "watches": list(ws.watches),
                "error_budget_source": source["source"], "ticks": ticks,
                "measurement_errors": errors,
                "cpu_s_per_s": round(cpu / wall, 4), "idle_cpu_s_per_s": round(idle, 4),
                "rss_mb_before": round(rss0 / 1024, 1), "rss_mb_after": round(rss1 / 1024, 1),
                "rss_growth_mb": round((rss1 - rss0) / 1024, 1),
                "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        shutil.rmtree(tmp, ignore_errors=True)


LOAD = r"""
import sys, time, urllib.request, urllib.error
app = sys.argv[1]
while True:
    for path in ("/api/accounts?account=nobody", "/api/health"):
        try:
            urllib.request.urlopen(app + path, timeout=2).read()
        except (urllib.error.URLError, OSError):
            pass
    time.sleep(0.04)
"""


def _get(url: str) -> int:
    import urllib.request
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status
    except OSError:
        return 0


def _wait(check, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rates", default="10000,20000,40000,80000,160000")
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--overhead-seconds", type=float, default=30)
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/watches.json")
    a = ap.parse_args()
    runs = []
    for r in (float(x) for x in a.rates.split(",")):
        res = log_tail_run(r, a.seconds)
        print(json.dumps(res))
        runs.append(res)
    kept = [x["rate_lines_per_s"] for x in runs if x["kept_up"]]
    ov = overhead(a.overhead_seconds)
    print(json.dumps(ov))
    out = {"when": datetime.now(UTC).isoformat(timespec="seconds"),
           "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
           "log_tail": {"runs": runs, "max_rate_kept_up": max(kept) if kept else 0,
                        "target_lines_per_s": 20000,
                        "meets_target": bool(kept) and max(kept) >= 20000},
           "overhead": ov}
    a.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
