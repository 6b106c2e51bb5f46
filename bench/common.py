"""What every benchmark records about its run: the commit, the machine, the results file."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def git_state() -> tuple[str, list[str]]:
    """HEAD and the uncommitted files (or GOLIVE_BENCH_COMMIT/_DIRTY for an exported tree)."""
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, check=False,
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, check=False,
                           capture_output=True, text=True).stdout.splitlines()
    if os.environ.get("GOLIVE_BENCH_COMMIT"):  # an exported tree (see bench/README.md)
        commit = os.environ["GOLIVE_BENCH_COMMIT"]
        dirty = [f for f in os.environ.get("GOLIVE_BENCH_DIRTY", "").split(",") if f]
    return commit, dirty


def header(benchmark: str, **machine: Any) -> dict[str, Any]:
    """The first keys of a results file: name, time, machine (plus `machine` extras)."""
    return {"benchmark": benchmark,
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"nproc": os.cpu_count(), "platform": platform.platform(), **machine}}


def git_fields(commit: str, dirty: list[str]) -> dict[str, Any]:
    return {"git_commit": commit, "git_dirty": bool(dirty), "git_dirty_files": dirty}


def write_results(path: Path, out: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2, default=str) + "\n")
