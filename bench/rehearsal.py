"""The full rehearsal: `golive rehearse --with-rollback`'s wall time and the bot's peak RSS.

Runs the real command as a user does (a subprocess: its own sample stack, fake GitHub, the
embedded PostgreSQL by default, the bot in-process with the scripted people), ``--runs`` times.
Wall time is from launch to exit, and per phase from the run's own timings.json. The bot's
peak RSS is sampled every 0.2 s over the `golive rehearse` process and its children (the
worker's step processes, up.sh's shells and the docker CLI they start), excluding the embedded
PostgreSQL's server processes and the containers, which are not the bot. Target: under 5
minutes. Writes bench/results/rehearsal.json with the git commit.

    .venv/bin/python bench/rehearsal.py [--runs 3] [--no-rollback]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "bench") not in sys.path:
    sys.path.insert(0, str(ROOT / "bench"))

import psutil
from common import git_fields, git_state, header, write_results

RESULTS = ROOT / "bench" / "results" / "rehearsal.json"
TARGET_S = 300.0


def _is_postgres(p: psutil.Process) -> bool:
    try:
        return "postgres" in p.name() or "pg_ctl" in p.name()
    except psutil.Error:
        return True


def sample_rss(pid: int, stop: threading.Event, out: dict[str, float]) -> None:
    """Peak RSS (MiB) of the process alone and of its tree (postgres excluded)."""
    try:
        root = psutil.Process(pid)
    except psutil.Error:
        return
    while not stop.is_set():
        try:
            main = root.memory_info().rss
            tree = main + sum(c.memory_info().rss for c in root.children(recursive=True)
                              if not _is_postgres(c))
        except psutil.Error:
            tree = main = 0
        out["main_mib"] = max(out.get("main_mib", 0.0), main / 2**20)
        out["tree_mib"] = max(out.get("tree_mib", 0.0), tree / 2**20)
        stop.wait(0.2)


def one_run(rollback: bool) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLACK_", "GOLIVE_", "PAYBOX_", "DATABASE_URL"))}
    with tempfile.TemporaryDirectory(prefix="golive-bench-rehearse-") as tmp:
        pack = Path(tmp) / "pack"
        argv = [sys.executable, "-m", "bot.cli", "rehearse", "--data-dir", tmp, "--out",
                str(pack), *(["--with-rollback"] if rollback else [])]
        peak: dict[str, float] = {}
        stop = threading.Event()
        started = time.monotonic()
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        sampler = threading.Thread(target=sample_rss, args=(proc.pid, stop, peak), daemon=True)
        sampler.start()
        output = proc.communicate(timeout=900)[0]
        wall = time.monotonic() - started
        stop.set()
        sampler.join(5)
        timings = json.loads((pack / "timings.json").read_text()) if pack.is_dir() else {}
    if proc.returncode != 0:
        print(output[-4000:], file=sys.stderr)
    return {"exit_code": proc.returncode, "wall_s": round(wall, 1),
            "phases_s": {p["name"]: p["seconds"] for p in timings.get("phases", [])},
            "peak_rss_main_mib": round(peak.get("main_mib", 0), 1),
            "peak_rss_tree_mib": round(peak.get("tree_mib", 0), 1),
            "loadavg": [round(x, 2) for x in os.getloadavg()]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-rollback", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    commit, dirty = git_state()
    runs = []
    for i in range(max(1, args.runs)):
        res = one_run(not args.no_rollback)
        runs.append(res)
        print(f"run {i + 1}: exit {res['exit_code']}, {res['wall_s']} s, peak RSS "
              f"{res['peak_rss_main_mib']} MiB (tree {res['peak_rss_tree_mib']} MiB)",
              flush=True)
    ok = [r for r in runs if r["exit_code"] == 0]
    phases = sorted({p for r in ok for p in r["phases_s"]},
                    key=lambda p: list(ok[0]["phases_s"]).index(p) if ok else 0)
    summary = {
        "passed": f"{len(ok)}/{len(runs)}",
        "median_wall_s": statistics.median(r["wall_s"] for r in ok) if ok else None,
        "max_wall_s": max((r["wall_s"] for r in ok), default=None),
        "target_s": TARGET_S,
        "target_met": bool(ok) and max(r["wall_s"] for r in ok) < TARGET_S,
        "median_phase_s": {p: statistics.median(r["phases_s"].get(p, 0) for r in ok)
                           for p in phases},
        "peak_rss_main_mib": max((r["peak_rss_main_mib"] for r in runs), default=None),
        "peak_rss_tree_mib": max((r["peak_rss_tree_mib"] for r in runs), default=None)}
    out = {**header("rehearsal"), **git_fields(commit, dirty),
           "method": "`golive rehearse" + ("" if args.no_rollback else " --with-rollback")
                     + "` as a subprocess, embedded PostgreSQL, its own sample stack; wall "
                     "time launch -> exit (set-up and tear-down included); RSS sampled at 5 Hz",
           "summary": summary, "runs": runs}
    write_results(args.out, out)
    print(json.dumps(summary, indent=2))
    return 0 if ok and len(ok) == len(runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
