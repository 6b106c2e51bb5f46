"""Fixtures for the watch tests: a scripted local HTTP server (recorded Prometheus and Sentry
answers, garbage included), a throwaway ledger database, the paybox stack and a Prometheus."""

from __future__ import annotations

import json
import subprocess
import threading
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.paybox.conftest import stack  # noqa: F401 - its paybox_stack is tests/conftest.py's
from tests.support import poll
from tests.support.paybox_env import PAYBOX, free_port
from tests.support.pg import create_database, drop_database

LEDGER_SCHEMA = """
CREATE TABLE accounts (id text PRIMARY KEY, available_cents bigint NOT NULL DEFAULT 0,
                       held_cents bigint NOT NULL DEFAULT 0);
CREATE TABLE payouts (id bigserial PRIMARY KEY, account_id text NOT NULL,
                      amount_cents bigint NOT NULL, status text NOT NULL,
                      updated_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE transactions (id bigserial PRIMARY KEY, account_id text NOT NULL,
                           kind text NOT NULL, amount_cents bigint NOT NULL);
"""


def wait_until(check: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy; fail saying ``what`` never happened."""
    return poll.wait_until(what, check, timeout)


class Scripted:
    """A loopback HTTP server answering every GET with the current (status, body)."""

    def __init__(self) -> None:
        self.status, self.body, self.ctype = 200, b"{}", "application/json"
        self.requests: list[str] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(self.path)
                self.send_response(outer.status)
                self.send_header("Content-Type", outer.ctype)
                self.send_header("Content-Length", str(len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, *a: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, body: Any, status: int = 200, raw: bool = False) -> None:
        self.status = status
        self.body = body if raw else json.dumps(body).encode()


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    s = Scripted()
    yield s
    s.server.shutdown()
    s.server.server_close()


@pytest.fixture
def ledger_db() -> Iterator[str]:
    """A database with the paybox ledger's tables (accounts, payouts, transactions)."""
    name, url = create_database("golive_watch")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(LEDGER_SCHEMA)
    yield url
    drop_database(name)


@pytest.fixture
def prometheus(paybox_stack: Any, tmp_path: Path) -> Iterator[str]:
    """Debian's Prometheus on a free loopback port, scraping the stack's app every second."""
    port = free_port()
    proc = subprocess.Popen(["bash", str(PAYBOX / "prometheus.sh"), str(tmp_path / "prom"),
                             str(port), str(paybox_stack.app_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError("prometheus exited: "
                                 + (proc.stderr.read() if proc.stderr else b"").decode()[-800:])
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    try:
        wait_until(ready, 30, "Prometheus to be ready")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
