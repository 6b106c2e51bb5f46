"""Where the sample stack lives and what it talks to (shared by the Docker test suites)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAYBOX = ROOT / "examples" / "paybox"
REGISTRY = os.environ.get("PAYBOX_REGISTRY", "127.0.0.1:5000")
PG_ADMIN_URL = os.environ.get("GOLIVE_TEST_PG",
                              os.environ.get("GOLIVE_TEST_PG_ADMIN_URL",
                                             "postgresql://postgres@127.0.0.1:5432/postgres"))


def worker_tag() -> str:
    """This test process's pytest-xdist worker (``gw0``...), ``main`` without xdist: part of
    the names of databases, roles and compose projects, so each shows whose it is."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def free_port() -> int:
    """A loopback port free right now (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
