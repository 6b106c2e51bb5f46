"""The sample stack's app on the host: a throwaway ledger database migrated with paybox's own
alembic migrations, and ``python -m paybox`` serving it, so every ledger row and log line in
these tests is written by paybox's own endpoints (no Docker needed)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config

from runbook.watches.logs import LogTail, file_opener
from tests.support.paybox_env import PAYBOX, free_port
from tests.support.pg import create_database, drop_database
from tests.watches.conftest import wait_until


@dataclass
class PayboxApp:
    url: str
    database_url: str
    webhook_secret: str
    log: Path
    version: str

    def post(self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None
             ) -> tuple[int, Any]:
        raw = json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=raw, method="POST",
                                     headers={"Content-Type": "application/json",
                                              **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def get(self, path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def deposit(self, account: str, cents: int, key: str) -> dict[str, Any]:
        status, body = self.post("/api/deposits", {"account": account, "amount_cents": cents,
                                                   "idempotency_key": key})
        assert status == 201, f"paybox refused the deposit: {status} {body}"
        return body

    def payout(self, account: str, cents: int, key: str) -> dict[str, Any]:
        status, body = self.post("/api/payouts", {"account": account, "amount_cents": cents,
                                                  "idempotency_key": key})
        assert status == 201 and body["status"] == "settled", f"payout: {status} {body}"
        return body

    def webhook(self, event_type: str, event_id: str) -> None:
        raw = json.dumps({"type": event_type, "id": event_id}).encode()
        sig = hmac.new(self.webhook_secret.encode(), raw, hashlib.sha256).hexdigest()
        req = urllib.request.Request(self.url + "/webhooks/psp", data=raw, method="POST",
                                     headers={"Content-Type": "application/json",
                                              "X-Paybox-Signature": f"sha256={sig}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200, f"webhook not verified: {r.status}"


def _migrate(url: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(PAYBOX / "app" / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url)
    cfg.attributes["configure_logger"] = False
    command.upgrade(cfg, "head")


@pytest.fixture(scope="module")
def paybox_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PayboxApp]:
    name, url = create_database("golive_canary")
    proc = None
    try:
        _migrate(url)
        log = tmp_path_factory.mktemp("paybox") / "paybox.log"
        port = free_port()
        app = PayboxApp(url=f"http://127.0.0.1:{port}", database_url=url,
                        webhook_secret="whs-" + secrets.token_hex(8), log=log, version="v2")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PAYBOX_")}
        env.update(PYTHONPATH=str(PAYBOX / "app"), PAYBOX_PORT=str(port),
                   PAYBOX_DATABASE_URL=url, PAYBOX_WEBHOOK_SECRET=app.webhook_secret,
                   PAYBOX_VERSION=app.version, PAYBOX_REVISION="c0ffee" * 6 + "abcd",
                   PAYBOX_OPS_TOKEN="ops-" + secrets.token_hex(8))
        proc = subprocess.Popen([sys.executable, "-m", "paybox"], env=env,
                                stdout=log.open("ab"), stderr=subprocess.STDOUT)

        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError("paybox exited: " + log.read_text()[-1500:])
            try:
                return app.get("/api/health")[0] == 200
            except OSError:
                return False

        wait_until(up, 20, "the paybox app to answer /api/health")
        yield app
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        drop_database(name)


@pytest.fixture
def app_tail(paybox_app: PayboxApp) -> Iterator[LogTail]:
    """The app's log followed from now, as the webhook watch follows it."""
    tail = LogTail("paybox-log", file_opener(paybox_app.log))
    yield tail
    tail.stop()
