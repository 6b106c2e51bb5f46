"""One endpoint in front of several bot replicas: each request goes to the next one in turn,
as a load balancer without affinity would send Slack's requests."""

from __future__ import annotations

import itertools
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class RoundRobin:
    def __init__(self, backends: list[str]):
        self.backends = list(backends)
        self.sent: list[str] = []  # the backend of each request, in order
        turn = itertools.cycle(range(len(self.backends)))
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # keep test output quiet
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    url = outer.backends[next(turn)]
                    outer.sent.append(url)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
                try:
                    r = httpx.post(url + self.path, content=body, headers=headers, timeout=30)
                    status, out, ctype = r.status_code, r.content, r.headers.get(
                        "content-type", "text/plain")
                except httpx.HTTPError:
                    status, out, ctype = 502, b"replica unreachable", "text/plain"
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
