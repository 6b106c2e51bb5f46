"""Run the `golive` command line as an operator would: a subprocess with its own environment."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support import pg


def golive(*args: str, url: str | None, key: str | None = pg.TEST_AUDIT_KEY,
           env: dict[str, str] | None = None, cwd=None) -> subprocess.CompletedProcess:
    """`golive ARGS` with DATABASE_URL=url and the test audit key (``key=None``: no key)."""
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("SLACK_", "GOLIVE_", "DATABASE_URL"))}
    if url is not None:
        base["DATABASE_URL"] = url
    if key is not None:
        base["GOLIVE_AUDIT_KEY"] = key
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], check=False,
                          env={**base, **(env or {})}, cwd=cwd, capture_output=True, text=True,
                          timeout=120)
