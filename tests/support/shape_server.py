"""A small configurable HTTP service on 127.0.0.1 for the stack-shape tests: its health JSON,
its login (form or JSON body, cookie or bearer session), its protected pages and its
maintenance switch (method, auth header) are parameters, so each shape golive claims to
support is tried over real HTTP. It records every request it answers.
"""

from __future__ import annotations

import json
import secrets
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Shape:
    health_path: str = "/healthz"
    health: dict[str, Any] = field(default_factory=lambda: {"state": "up"})
    login_path: str = "/auth/session"
    login_body: str = "json"                 # "form" | "json"
    user_field: str = "email"
    password_field: str = "secret"
    user: str = "ops@example.com"
    password: str = "pw-" + secrets.token_hex(6)
    session: str = "bearer"                  # "cookie" | "bearer"
    token_path: tuple[str, ...] = ("session", "token")
    login_status: int = 201
    pages: dict[str, str] = field(default_factory=lambda: {"/console": "<h1>Ledger console</h1>",
                                                           "/reports": "<h1>Reports</h1>"})
    switch_path: str = "/ops/maintenance"
    switch_method: str = "PUT"
    switch_header: str = "Authorization"
    switch_format: str = "Bearer {token}"
    switch_token: str = "sw-" + secrets.token_hex(6)
    maintenance_text: str = "Down for a moment"


class ShapeServer:
    def __init__(self, shape: Shape):
        self.shape = shape
        self.seen: list[Seen] = []
        self.tokens: set[str] = set()
        self.maintenance = False
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def _reply(self, status: int, body: Any, ctype: str = "application/json",
                       headers: list[tuple[str, str]] | None = None) -> None:
                raw = (json.dumps(body) if ctype == "application/json" else str(body)).encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(raw)))
                for k, v in headers or []:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(raw)

            def _handle(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                path = urllib.parse.urlsplit(self.path).path
                with server.lock:
                    server.seen.append(Seen(self.command, path, dict(self.headers.items()), body))
                server.route(self, self.command, path, body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self.handler = Handler
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> ShapeServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def requests_to(self, path: str) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if s.path == path]

    # ---- routes ----------------------------------------------------------------------------
    def route(self, h: Any, method: str, path: str, body: bytes) -> None:
        s = self.shape
        if path == s.switch_path:
            return self.switch(h, method, body)
        if self.maintenance and path != s.health_path:
            return h._reply(503, f"<h1>{s.maintenance_text}</h1>", "text/html")
        if path == s.health_path and method == "GET":
            if self.maintenance:
                return h._reply(503, {"state": "maintenance"})
            return h._reply(200, s.health)
        if path == s.login_path and method == "POST":
            return self.login(h, body)
        if path in s.pages and method == "GET":
            if not self.authorised(h):
                return h._reply(401, {"error": "login required"})
            return h._reply(200, s.pages[path], "text/html")
        if path == "/" and method == "GET":
            return h._reply(200, "<h1>Welcome</h1>", "text/html")
        return h._reply(404, {"error": "not found"})

    def login(self, h: Any, body: bytes) -> None:
        s = self.shape
        ctype = h.headers.get("Content-Type") or ""
        try:
            if s.login_body == "json":
                if "json" not in ctype:
                    return h._reply(415, {"error": "send JSON"})
                data = json.loads(body or b"{}")
            else:
                if "x-www-form-urlencoded" not in ctype:
                    return h._reply(415, {"error": "send a form"})
                data = {k: v[-1] for k, v in urllib.parse.parse_qs(body.decode()).items()}
        except ValueError:
            return h._reply(400, {"error": "bad body"})
        if data.get(s.user_field) != s.user or data.get(s.password_field) != s.password:
            return h._reply(401, {"error": "invalid credentials"})
        token = "tok-" + secrets.token_hex(12)
        with self.lock:
            self.tokens.add(token)
        if s.session == "cookie":
            return h._reply(s.login_status, {"ok": True},
                            headers=[("Set-Cookie", f"sid={token}; Path=/; HttpOnly")])
        answer: Any = token
        for part in reversed(s.token_path):
            answer = {part: answer}
        return h._reply(s.login_status, {**answer, "expires_in": 900})

    def authorised(self, h: Any) -> bool:
        if self.shape.session == "cookie":
            cookies = dict(p.strip().partition("=")[::2]
                           for p in (h.headers.get("Cookie") or "").split(";") if p.strip())
            return cookies.get("sid") in self.tokens
        auth = h.headers.get("Authorization") or ""
        return auth.startswith("Bearer ") and auth[len("Bearer "):] in self.tokens

    def switch(self, h: Any, method: str, body: bytes) -> None:
        s = self.shape
        if method != s.switch_method:
            return h._reply(405, {"error": f"use {s.switch_method}"})
        want = s.switch_format.format(token=s.switch_token)
        if h.headers.get(s.switch_header) != want:
            return h._reply(401, {"error": "bad credential"})
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            return h._reply(400, {"error": "bad body"})
        if "mode" not in data:
            return h._reply(422, {"error": "mode is required"})
        self.maintenance = data["mode"] == "down"
        return h._reply(200, {"mode": data["mode"]})
