"""Manual vs autopilot rehearsal (issue 21 item 5): `golive rehearse` and `golive rehearse
--autopilot` in the same session, alternating (manual, autopilot, manual, ...), ``--runs`` of
each, with a rollback unless --no-rollback.

Each is the real command as a user runs it (a subprocess: its own sample stack, fake GitHub,
the embedded PostgreSQL, the bot in-process with the scripted people). Per run, from the pack's
counts.json (bot/dev/rehearse/counts.py): human actions (commands typed + clicks + modal
submits, as the sandbox delivered them; the scripted people's read-only look-ups, `status` and
`watch list`, counted apart), top-level messages, thread replies and ephemeral replies in the
cutover channel, and the rehearsal's own wall time to the end of `finish` (set-up included,
tear-down not); plus launch -> exit. Medians per mode. The machine's load average before and
after each run is recorded (other work shares it). Writes
bench/results/rehearsal_autopilot.json with the git commit.

    .venv/bin/python bench/rehearsal_autopilot.py [--runs 3] [--no-rollback]
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "bench") not in sys.path:
    sys.path.insert(0, str(ROOT / "bench"))

from common import git_fields, git_state, header, write_results

RESULTS = ROOT / "bench" / "results" / "rehearsal_autopilot.json"
MODES = ("manual", "autopilot")
KEYS = ("human_actions", "commands", "clicks", "modal_submits", "lookups", "top_level",
        "thread_replies", "ephemeral", "wall_s", "night_s")


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False
                          ).stdout.strip()


def one_run(mode: str, rollback: bool) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLACK_", "GOLIVE_", "PAYBOX_", "DATABASE_URL"))}
    env["COLUMNS"] = "160"
    with tempfile.TemporaryDirectory(prefix="golive-bench-rehearse-ap-") as tmp:
        pack = Path(tmp) / "pack"
        argv = [sys.executable, "-m", "bot.cli", "rehearse", "--data-dir", tmp, "--out",
                str(pack), *(["--autopilot"] if mode == "autopilot" else []),
                *(["--with-rollback"] if rollback else [])]
        load_before = uptime()
        started = time.monotonic()
        proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=900, check=False)
        wall = time.monotonic() - started
        manifest = json.loads((pack / "manifest.json").read_text()) if pack.is_dir() else {}
    if proc.returncode != 0:
        print((proc.stdout + proc.stderr)[-4000:], file=sys.stderr)
    counts = manifest.get("counts") or {}
    return {"mode": mode, "exit_code": proc.returncode, "pack_mode": manifest.get("mode"),
            "launch_to_exit_s": round(wall, 1),
            **{k: counts.get(k) for k in KEYS}, "typed": counts.get("typed"),
            "phases_s": {p["name"]: p["seconds"] for p in manifest.get("phases", [])},
            "uptime_before": load_before, "uptime_after": uptime()}


def median(runs: list[dict], key: str) -> float | None:
    vals = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="runs of each mode")
    ap.add_argument("--no-rollback", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    commit, dirty = git_state()
    rollback = not args.no_rollback
    runs: list[dict] = []
    for i in range(max(1, args.runs)):
        for mode in MODES:
            res = one_run(mode, rollback)
            runs.append(res)
            print(f"{mode} run {i + 1}: exit {res['exit_code']}, {res['human_actions']} "
                  f"actions, {res['top_level']} top-level, {res['thread_replies']} replies, "
                  f"{res['ephemeral']} ephemeral, {res['wall_s']} s "
                  f"({res['launch_to_exit_s']} s launch -> exit); {res['uptime_after']}",
                  flush=True)
    summary = {}
    for mode in MODES:
        ok = [r for r in runs if r["mode"] == mode and r["exit_code"] == 0]
        summary[mode] = {"passed": f"{len(ok)}/{sum(r['mode'] == mode for r in runs)}",
                         "n": len(ok),
                         **{f"median_{k}": median(ok, k) for k in (*KEYS, "launch_to_exit_s")},
                         "typed": ok[0]["typed"] if ok else None}
    m, a = summary["manual"], summary["autopilot"]
    if m["n"] and a["n"]:
        summary["autopilot_minus_manual"] = {
            k: round(a[f"median_{k}"] - m[f"median_{k}"], 1)
            for k in ("human_actions", "top_level", "thread_replies", "ephemeral", "wall_s")}
    out = {**header("rehearsal_autopilot", uptime=uptime()), **git_fields(commit, dirty),
           "method": "`golive rehearse" + (" --with-rollback" if rollback else "") + "` and "
                     "the same with --autopilot, alternating, as subprocesses (embedded "
                     "PostgreSQL, own sample stack each); counts from the pack's counts.json; "
                     "wall_s = the rehearsal's start to the end of finish (set-up included)",
           "with_rollback": rollback, "summary": summary, "runs": runs}
    write_results(args.out, out)
    print(json.dumps(summary, indent=2))
    return 0 if all(r["exit_code"] == 0 for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
