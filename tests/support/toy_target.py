"""A small real target for tests that need no Docker: an HTTP ingress whose maintenance page is
switched by a real command (the `command` switch kind), and a counter of switch executions."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class ToyTarget:
    def __init__(self, root: Path):
        self.root = root
        self.flag = root / "maintenance.flag"
        self.counter = root / "switch-executions.log"
        target = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # keep test output quiet
                pass

            def do_GET(self):
                if target.flag.exists():
                    body = b"<html><h1>Scheduled maintenance</h1></html>"
                    self.send_response(503)
                    self.send_header("Retry-After", "60")
                    self.send_header("Content-Type", "text/html")
                else:
                    body = json.dumps({"status": "ok", "db": "ok"}).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> ToyTarget:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def executions(self) -> list[str]:
        return self.counter.read_text().split() if self.counter.exists() else []

    def config(self, *, extra: str = "", switch_s: float = 0.0) -> str:
        """The [target] table pointing the bot at this ingress; ``switch_s`` makes each flip
        take that long (a step still running after a second gets a live log in its thread)."""
        wait = f"sleep {switch_s} && " if switch_s else ""
        on = f"{wait}echo on >> {self.counter} && touch {self.flag}"
        off = f"{wait}echo off >> {self.counter} && rm -f {self.flag}"
        return f"""
[target]
name = "toy"
public_url = "{self.url}"
internal_url = "{self.url}"

[target.maintenance]
kind = "command"
on = ["sh", "-c", "{on}"]
off = ["sh", "-c", "{off}"]

[target.health]
path = "/api/health"

[target.probe]
backoff_initial_s = 0.05
backoff_max_s = 0.1
{extra}
"""
