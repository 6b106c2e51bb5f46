"""A small stack of a team's own, unlike paybox, for `golive config check` to try: a real HTTP
app (health JSON, JSON-free form login, a maintenance switch that refuses GET), a real compose
file, a real PostgreSQL database with its own schema, and a smoke script in Python.

``config()`` is its ``[target]`` / ``[watches]`` / ``[canary]`` TOML; each test breaks one part.
"""

from __future__ import annotations

import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import psycopg

from tests.support import pg

PASSWORD = "shop-admin-pass-7f3a9c"
"""The admin password (in the environment as SHOP_ADMIN_PASSWORD): never printed."""

SCHEMA = """
CREATE TABLE wallets (id text PRIMARY KEY, balance bigint NOT NULL, pending bigint NOT NULL);
CREATE TABLE orders (id bigserial PRIMARY KEY, wallet text, amount bigint, state text,
                     ref text, changed timestamptz DEFAULT now());
"""

COMPOSE = """\
services:
  web:
    image: ${SHOP_REGISTRY:-127.0.0.1:5000}/shop/web:${SHOP_WEB_TAG:-v1}
    environment:
      SHOP_DSN: ${SHOP_DSN:-postgresql://db/shop}
  worker:
    image: ${SHOP_REGISTRY:-127.0.0.1:5000}/shop/web:${SHOP_WEB_TAG:-v1}
    command: ["python", "-m", "shop.worker"]
"""

SMOKE = """#!/usr/bin/env python3
import sys
print("smoke ok", sys.argv[1:])
"""


class ShopStack:
    def __init__(self, root: Path):
        self.root = root
        self.compose_file = root / "shop-compose.yaml"
        self.compose_file.write_text(COMPOSE, encoding="utf-8")
        self.smoke = root / "smoke.py"
        self.smoke.write_text(SMOKE, encoding="utf-8")
        self.smoke.chmod(0o755)
        self.release_repo = root / "release.git"  # the release freeze reads tags from git
        subprocess.run(["git", "init", "-q", "--bare", str(self.release_repo)], check=True)
        self.db_name, self.db_url = pg.create_database("golive_shop")
        with psycopg.connect(self.db_url, autocommit=True) as conn:
            conn.execute(SCHEMA)

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # keep test output quiet
                pass

            def _send(self, status: int, body: dict, cookie: bool = False) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                if cookie:
                    self.send_header("Set-Cookie", "shop_session=abc; Path=/; HttpOnly")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path == "/healthz":
                    self._send(200, {"state": "up", "database": "ok",
                                     "build": {"release": "v1"}})
                elif self.path == "/ops/maint":
                    self._send(405, {"error": "use PUT"})
                elif self.path == "/console":
                    if "shop_session=abc" in (self.headers.get("Cookie") or ""):
                        self._send(200, {"page": "Shop console"})
                    else:
                        self._send(302, {"login": "/session"})
                elif self.path == "/":
                    self._send(200, {"shop": True})
                else:
                    self._send(404, {"error": "not found"})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                if self.path != "/session":
                    self._send(404, {"error": "not found"})
                elif form.get("user") == ["ops-bot"] and form.get("pass") == [PASSWORD]:
                    self._send(200, {"ok": True}, cookie=True)
                else:
                    self._send(401, {"error": "bad credentials"})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> ShopStack:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        pg.drop_database(self.db_name)

    def environ(self) -> dict[str, str]:
        """What the bot's environment holds for this stack (secrets expanded by ${VAR})."""
        return {"SHOP_ADMIN_PASSWORD": PASSWORD, "SHOP_DSN": self.db_url}

    HEAD = 'secrets = ["SHOP_ADMIN_PASSWORD", "SHOP_DSN"]\n'
    """Top-level keys (before any table): the variables whose values are secret."""

    def config(self, **swap: str) -> str:
        """The stack's TOML; ``swap`` replaces one line's value by key (``health_path=...``)."""
        values = {
            "health_path": '"/healthz"',
            "expect": '{ state = "up", database = "ok" }',
            "compose_file": f'"{self.compose_file}"',
            "smoke_path": f'"{self.smoke}"',
            "maintenance_url": f'"{self.url}/ops/maint"',
            "payouts_sql": ('"SELECT count(*) FILTER (WHERE state = \'failed\') AS failed, '
                            'count(*) AS total FROM orders WHERE changed > now() - '
                            'make_interval(secs => %(window_s)s)"'),
            "login_path": '"/session"',
            "webhook_service": '"web"',
            "git_url": f'"{self.release_repo}"',
            "version_field": '"build.release"',
            "deploy_service": '"web"',
            "dashboard_text": '"Shop console"',
            "watch_health_path": '"/healthz"',
            **swap,
        }
        v = values
        return f"""
[target]
name = "shop"
public_url = "{self.url}"
internal_url = "{self.url}"

[target.deployer]
kind = "compose"
compose_file = {v['compose_file']}
project = "shop-config-check"
registry = "127.0.0.1:5000"
registry_variable = "SHOP_REGISTRY"
services = [{{ service = {v['deploy_service']}, repository = "shop/web", tag_variable = "SHOP_WEB_TAG" }}]
env = {{ SHOP_DSN = "${{SHOP_DSN}}" }}

[target.health]
path = {v['health_path']}
expect = {v['expect']}
version_field = {v['version_field']}

[target.admin_login]
path = {v['login_path']}
username = "ops-bot"
password = "${{SHOP_ADMIN_PASSWORD}}"
username_field = "user"
password_field = "pass"

[target.dashboard]
path = "/console"
expect_text = {v['dashboard_text']}

[target.smoke]
path = {v['smoke_path']}
args = ["{{internal_url}}"]

[target.maintenance]
kind = "http"
url = {v['maintenance_url']}
method = "PUT"

[target.migrations]
mode = "alembic-api"
script_location = "{self.root}"
database_url = "${{SHOP_DSN}}"

[target.probe]
backoff_initial_s = 0.05
backoff_max_s = 0.1

[preflight]
checks = ["release_freeze"]

[preflight.release_freeze]
source = "git"
git_url = {v['git_url']}

[watches.health]
path = {v['watch_health_path']}

[watches.webhooks]
logs = {{ kind = "docker", service = {v['webhook_service']} }}

[watches.payouts]
sql = {v['payouts_sql']}

[watches.ledger]
invariants = {{ no_negative = "SELECT id FROM wallets WHERE balance < 0" }}

[canary.queries]
balances = "SELECT balance AS available, pending AS held FROM wallets WHERE id = %(account)s"
deposit = "SELECT id::text AS id, wallet AS account, amount, state AS status, changed AS at FROM orders WHERE ref = %(reference)s"
withdrawal = "SELECT id::text AS id, wallet AS account, amount, state AS status, changed AS at FROM orders WHERE ref = %(reference)s"
invariants = {{ no_negative = "SELECT id FROM wallets WHERE balance < 0" }}
"""
