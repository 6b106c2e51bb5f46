"""`golive rehearse` on a machine without Docker says exactly what is missing and how to get
it, starts nothing and exits 1 (no Docker needed to run this)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_without_docker_it_says_what_is_missing_and_starts_nothing(tmp_path):
    bin_dir = tmp_path / "bin"  # a PATH with python and bash, but no docker
    bin_dir.mkdir()
    for tool in ("bash", "sh"):
        (bin_dir / tool).symlink_to(f"/bin/{tool}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOLIVE_", "PAYBOX_"))}
    env["PATH"] = str(bin_dir)
    r = subprocess.run([sys.executable, "-m", "bot.cli", "rehearse", "--data-dir",
                        str(tmp_path / "data")], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=60, check=False)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "cannot start; missing" in out and "Docker is not installed" in out, out
    assert "bash .ci/docker-up.sh" in out, "it must say how to get Docker"
    assert "Traceback" not in out and "0. Setup" not in out, "nothing may start"
    assert not (tmp_path / "data" / "rehearse").exists(), "nothing may be created"
