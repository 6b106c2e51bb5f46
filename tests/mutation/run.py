"""A small mutation check over the safety-critical code (issue 7, section 7).

Each mutation in ``mutations.py`` removes one layer of defence. For each, a fresh copy of the
repository (never the working tree, never git state) gets the edit, and the tests named for
it run against that copy; the mutation is *caught* when they fail. First, a baseline: every
named test file must pass unmutated in a pristine copy, or the score means nothing.

    .venv/bin/python tests/mutation/run.py                 # everything, results.json
    .venv/bin/python tests/mutation/run.py -k reaper -j 2  # names containing "reaper", 2 at once
    .venv/bin/python tests/mutation/run.py --rev HEAD      # the last commit, not the tree
    .venv/bin/python tests/mutation/run.py --skip-file bot/server.py  # leave its mutations out

The working tree is never edited: every mutant lives in a copy under a temporary directory,
which is removed at the end, on Ctrl-C, on SIGTERM and on a timeout (the test runs started
are killed first, with their process groups).

Not collected by pytest (no ``test_*.py`` here): it runs the suite, it is not part of it.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
from mutations import MUTATIONS

EXCLUDE = (".venv", ".git", "__pycache__", ".pytest_cache", ".ruff_cache", "*.egg-info",
           "results.json")


def python() -> str:
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


SOURCE = {"rev": None, "overlay": []}  # set by main(): what copy_repo copies


def copy_repo(dest: Path) -> Path:
    """A copy of the working tree (or of a commit, read with ``git archive``: no git state
    changes) without the venv, git state or caches; ``overlay`` files come from the tree."""
    if SOURCE["rev"] is None:
        subprocess.run(["rsync", "-a", *[f"--exclude={e}" for e in EXCLUDE], f"{REPO}/",
                        f"{dest}/"], check=True)
    else:
        dest.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", SOURCE["rev"]],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
        for rel in SOURCE["overlay"]:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dest / rel)
    return dest


def env_for(copy: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = str(copy)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def check_imports(copy: Path) -> None:
    """The copy's modules must shadow the editable install's (which points at the tree)."""
    code = ("import bot, runbook, tests, runbook.rules.approvals;"
            "print(bot.__file__); print(runbook.__file__); print(tests.__file__)")
    out = subprocess.run([python(), "-c", code], cwd=copy, env=env_for(copy), check=True,
                         capture_output=True, text=True).stdout.split()
    wrong = [p for p in out if not Path(p).resolve().is_relative_to(copy.resolve())]
    if wrong:
        sys.exit(f"imports do not come from the copy {copy}: {wrong}")


def apply(copy: Path, edits: list[tuple[str, str, str]]) -> None:
    """Apply (file, snippet, replacement) edits; each snippet must occur exactly once. Only
    ever inside a copy in the temporary directory, never in the repository itself."""
    root = Path(tempfile.gettempdir()).resolve()
    if not copy.resolve().is_relative_to(root) or copy.resolve().is_relative_to(REPO):
        raise RuntimeError(f"refusing to mutate {copy}: not a copy under {root}")
    for rel, old, new in edits:
        path = copy / rel
        text = path.read_text(encoding="utf-8")
        n = text.count(old)
        if n != 1:
            raise ValueError(f"{rel}: snippet occurs {n} times, expected once: {old[:80]!r}")
        path.write_text(text.replace(old, new), encoding="utf-8")


STOP = threading.Event()  # set on Ctrl-C / SIGTERM: start nothing more
LIVE: set[subprocess.Popen] = set()  # the test runs going on now
LIVE_LOCK = threading.Lock()


def kill_group(proc: subprocess.Popen) -> None:
    """End a test run and every process it started (its own session)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def stop_all() -> None:
    STOP.set()
    with LIVE_LOCK:
        procs = list(LIVE)
    for proc in procs:
        kill_group(proc)


def run_tests(copy: Path, tests: list[str], timeout: float) -> tuple[str, float, str]:
    """("passed" | "failed" | "timeout" | "cancelled", seconds, output tail)."""
    # A mutation can make a test wait on a lock forever: pytest-timeout ends it (caught).
    # `-p no:xdist`: one process per run (a run is a few files; the runner's -j parallelises);
    # the addopts' `-n auto` is then accepted and ignored (tests/conftest.py).
    cmd = [python(), "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
           "-m", "not docker", "-o", "timeout=90", *tests]
    started = time.monotonic()
    if STOP.is_set():
        return "cancelled", 0.0, ""
    proc = subprocess.Popen(cmd, cwd=copy, env=env_for(copy), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    with LIVE_LOCK:
        LIVE.add(proc)
    if STOP.is_set():  # interrupted while it started
        kill_group(proc)
    try:
        out, _ = proc.communicate(timeout=timeout)
        status = "passed" if proc.returncode == 0 else "failed"
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, _ = proc.communicate()
        status = "timeout"
    finally:
        with LIVE_LOCK:
            LIVE.discard(proc)
    if STOP.is_set():
        status = "cancelled"
    lines = out.strip().splitlines()
    why = [x for x in lines if x.startswith("E ")][:3]  # the first assertion's message
    tail = "\n".join(why + lines[-6:])
    return status, round(time.monotonic() - started, 1), tail


def one(m: dict, base: Path, work: Path, timeout: float) -> dict:
    if STOP.is_set():
        return {"name": m["name"], "issue": m["issue"], "status": "cancelled"}
    copy = copy_repo(work / m["name"])
    try:
        apply(copy, m["edits"])
        status, secs, tail = run_tests(copy, m["tests"], timeout)
    except ValueError as e:
        return {"name": m["name"], "issue": m["issue"], "status": "broken", "detail": str(e)}
    finally:
        shutil.rmtree(copy, ignore_errors=True)
    # A timeout counts as caught (the suite would not go green), but is shown as such.
    caught = status in ("failed", "timeout")
    return {"name": m["name"], "issue": m["issue"], "tests": m["tests"],
            "files": sorted({e[0] for e in m["edits"]}), "caught": caught, "status": status,
            "seconds": secs, "output": tail}


def measured_at() -> str:
    """What was measured: ``git rev-parse`` of the commit, "+ uncommitted" for a dirty tree."""
    def git(*a: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *a], check=True, capture_output=True,
                              text=True).stdout.strip()
    if SOURCE["rev"] is not None:  # the mutations themselves are always the tree's
        extra = f" + overlay {', '.join(SOURCE['overlay'])}" if SOURCE["overlay"] else ""
        mine = git("status", "--porcelain", "--untracked-files=no", "--", str(HERE))
        return git("rev-parse", SOURCE["rev"]) + extra + (
            " + uncommitted tests/mutation" if mine else "")
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return git("rev-parse", "HEAD") + (" + uncommitted" if dirty else "")


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-k", default="", help="only mutations whose name contains this (or "
                                           "one of these, comma-separated)")
    ap.add_argument("-j", "--jobs", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=420.0, help="seconds per test run")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--out", default=str(HERE / "results.json"))
    ap.add_argument("--rev", help="copy this commit (e.g. HEAD) instead of the working tree, "
                                  "when others' half-made edits break it")
    ap.add_argument("--overlay", nargs="*", default=[],
                    help="with --rev: these files (e.g. new tests) from the working tree")
    ap.add_argument("--skip-file", action="append", default=[],
                    help="leave out the mutations of this file (e.g. while someone rewrites "
                         "it); they are listed as skipped, not counted")
    args = ap.parse_args()
    SOURCE.update(rev=args.rev, overlay=args.overlay)
    names = [m["name"] for m in MUTATIONS]
    assert len(names) == len(set(names)), "mutation names must be unique"
    wanted = [m for m in MUTATIONS if any(k in m["name"] for k in args.k.split(","))]
    skipped = [m for m in wanted if {e[0] for e in m["edits"]} & set(args.skip_file)]
    chosen = [m for m in wanted if m not in skipped]
    commit = measured_at()
    for sig in (signal.SIGINT, signal.SIGTERM):  # SIGINT too: `&` in a script ignores it
        signal.signal(sig, _interrupted)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="golive-mutation-"))
    pool = concurrent.futures.ThreadPoolExecutor(args.jobs)
    results: list[dict] = []
    try:
        base = copy_repo(work / "_baseline")
        check_imports(base)
        for m in chosen:  # every snippet must still match the code as it is now
            apply(copy_repo(work / "_check"), m["edits"])
            shutil.rmtree(work / "_check")
        if not args.no_baseline:  # each named test file, unmutated, `-j` at a time
            files = sorted({t.split("::")[0] for m in chosen for t in m["tests"]})
            runs = dict(zip(files, pool.map(
                lambda f: run_tests(base, [f], args.timeout), files), strict=True))
            bad = {f: r for f, r in runs.items() if r[0] != "passed"}
            secs = round(sum(r[1] for r in runs.values()), 1)
            print(f"baseline: {len(files)} test files, {len(files) - len(bad)} passed "
                  f"({secs}s of test time)", flush=True)
            if bad:
                for f, (status, _, tail) in bad.items():
                    print(f"  {status.upper()} {f}\n{tail}")
                return 2
        futures = [pool.submit(one, m, base, work, args.timeout) for m in chosen]
        for f in concurrent.futures.as_completed(futures):
            r = f.result()
            results.append(r)
            mark = "caught" if r.get("caught") else r["status"].upper()
            print(f"  {mark:8} {r['name']} ({r.get('seconds', 0)}s)", flush=True)
    except KeyboardInterrupt:
        print("\ninterrupted: ending the test runs and removing the copies", file=sys.stderr)
        stop_all()
        return 130
    finally:  # a second Ctrl-C must not leave the copies behind
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        pool.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(work, ignore_errors=True)
    order = {n: i for i, n in enumerate(names)}
    results.sort(key=lambda r: order[r["name"]])
    caught = [r for r in results if r.get("caught")]
    missed = [r for r in results if not r.get("caught")]
    total = round(time.monotonic() - started, 1)
    print(f"\n{len(caught)} of {len(results)} caught in {total}s (at {commit})")
    for r in missed:
        print(f"  MISSED {r['name']}: {r['issue']} ({r['status']}; tests: {r.get('tests')})")
    for m in skipped:
        print(f"  SKIPPED {m['name']}: mutates {', '.join(sorted({e[0] for e in m['edits']}))}")
    Path(args.out).write_text(json.dumps({
        "commit": commit, "caught": len(caught), "total": len(results), "seconds": total,
        "jobs": args.jobs, "missed": [r["name"] for r in missed],
        "skipped": [{"name": m["name"], "files": sorted({e[0] for e in m["edits"]}),
                     "why": "--skip-file " + ", ".join(sorted({e[0] for e in m["edits"]}
                                                             & set(args.skip_file)))}
                    for m in skipped],
        "results": results}, indent=2) + "\n", encoding="utf-8")
    return 0 if not missed else 1


if __name__ == "__main__":
    sys.exit(main())
