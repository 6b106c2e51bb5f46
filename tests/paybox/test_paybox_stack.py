"""The examples/paybox sample stack really works: ledger, maintenance, knobs, webhooks, images.

Runs against real containers pulled from the local registry (see conftest.py).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
import urllib.request

import pytest

from tests.paybox.conftest import PAYBOX, REGISTRY, Stack

pytestmark = pytest.mark.docker

LABEL = "org.opencontainers.image.revision"


def _acct() -> str:
    return "acct-" + secrets.token_hex(4)


def _wait_http(url: str, want: int = 200, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    code = 0
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=3) as r:
                code = r.status
        except urllib.error.HTTPError as e:
            code = e.code
        except OSError:
            code = 0
        if code == want:
            return code
        time.sleep(0.5)
    return code


def test_v1_baseline_health(stack: Stack) -> None:
    for base in (stack.app, stack.edge):
        status, body = stack.json("GET", f"{base}/api/health")
        assert status == 200, body
        assert body["status"] == "ok"
        assert body["version"] == "v1"
        assert body["revision"] == stack.revisions["v1"]
        assert body["db"] == "ok"
        assert body["schema"] == "0001_ledger"
    status, body = stack.json("GET", f"{stack.edge}/ops/status")
    assert status == 200 and body["maintenance"] is False and body["upstream"] == "ok"


def test_deposit_payout_keeps_ledger_consistent(stack: Stack) -> None:
    acct = _acct()
    status, dep = stack.json("POST", f"{stack.edge}/api/deposits",
                             {"account": acct, "amount_cents": 1000, "idempotency_key": acct + "-d"})
    assert status == 201, dep
    assert dep["available_cents"] == 1000
    # replaying the same deposit is idempotent
    status, again = stack.json("POST", f"{stack.edge}/api/deposits",
                               {"account": acct, "amount_cents": 1000,
                                "idempotency_key": acct + "-d"})
    assert status == 200 and again["replay"] is True and again["available_cents"] == 1000

    status, pay = stack.json("POST", f"{stack.edge}/api/payouts",
                             {"account": acct, "amount_cents": 400, "idempotency_key": acct + "-p"})
    assert status == 201, pay
    assert pay["status"] == "settled"
    assert pay["held_cents"] == 0 and pay["available_cents"] == 600

    with stack.db() as conn:
        avail, held = conn.execute("SELECT available_cents, held_cents FROM accounts WHERE id=%s",
                                   (acct,)).fetchone()
        total = conn.execute("SELECT sum(amount_cents) FROM transactions WHERE account_id=%s",
                             (acct,)).fetchone()[0]
        pstatus = conn.execute("SELECT status FROM payouts WHERE account_id=%s",
                               (acct,)).fetchone()[0]
    assert (avail, held, total, pstatus) == (600, 0, 600, "settled")

    status, bal = stack.json("GET", f"{stack.edge}/api/accounts?account={acct}")
    assert status == 200 and bal["available_cents"] == 600 and bal["held_cents"] == 0

    status, over = stack.json("POST", f"{stack.edge}/api/payouts",
                              {"account": acct, "amount_cents": 10_000})
    assert status == 422 and over["error"] == "insufficient_funds"

    status, check = stack.json("GET", f"{stack.app}/ops/ledger/check", token=True)
    assert status == 200 and check["ok"] is True, check
    assert stack.json("GET", f"{stack.app}/ops/ledger/check")[0] == 401

    status, metrics = stack.json("GET", f"{stack.app}/ops/metrics", token=True)
    assert status == 200
    assert metrics["payouts_attempted"] >= 1 and metrics["requests"]["2xx"] >= 3


def test_maintenance_page_survives_app_redeploy_and_edge_restart(stack: Stack) -> None:
    assert stack.json("POST", f"{stack.edge}/ops/maintenance", {"enabled": True})[0] == 401
    stack.set_maintenance(True)

    def assert_maintenance() -> None:
        status, headers, text = stack.http("GET", f"{stack.edge}/dashboard")
        assert status == 503, text[:200]
        assert "Scheduled maintenance" in text
        assert "Retry-After" in headers
        assert headers["Content-Type"].startswith("text/html")

    assert_maintenance()
    assert stack.json("GET", f"{stack.edge}/ops/status")[1]["maintenance"] is True
    # operators (token) see through the page
    assert stack.http("GET", f"{stack.edge}/api/health", token=True)[0] == 200

    stack.compose("up", "-d", "--wait", "--force-recreate", "--no-deps", "app")
    assert_maintenance()
    stack.compose("restart", "edge")
    assert _wait_http(f"{stack.edge}/ops/status") == 200
    assert_maintenance()

    stack.set_maintenance(False)
    status, _, _ = stack.http("GET", f"{stack.edge}/api/health")
    assert status == 200


def test_edge_answers_502_when_app_is_down(stack: Stack) -> None:
    stack.compose("stop", "app")
    try:
        status, _, _ = stack.http("GET", f"{stack.edge}/api/health")
        assert status == 502
        assert stack.json("GET", f"{stack.edge}/ops/status")[1]["upstream"] == "down"
    finally:
        stack.compose("up", "-d", "--wait", "app")
    assert stack.json("GET", f"{stack.edge}/ops/status")[1]["upstream"] == "ok"


def test_knobs_health_red_payout_failures_and_ledger_violation(stack: Stack) -> None:
    assert stack.json("POST", f"{stack.app}/ops/knobs", {"health_red": True})[0] == 401
    assert stack.json("POST", f"{stack.app}/ops/knobs", {"nope": 1}, token=True)[0] == 400

    stack.set_knobs(health_red=True)
    status, body = stack.json("GET", f"{stack.app}/api/health")
    assert status == 503 and body["status"] == "degraded"
    assert stack.json("GET", f"{stack.edge}/ops/status")[1]["upstream"] == "down"
    stack.set_knobs(health_red=False)
    assert stack.json("GET", f"{stack.app}/api/health")[0] == 200

    acct = _acct()
    stack.json("POST", f"{stack.app}/api/deposits", {"account": acct, "amount_cents": 500})
    before = stack.json("GET", f"{stack.app}/ops/metrics", token=True)[1]
    stack.set_knobs(payout_fail_rate=1.0)
    status, pay = stack.json("POST", f"{stack.app}/api/payouts",
                             {"account": acct, "amount_cents": 200})
    assert status == 201 and pay["status"] == "failed", pay
    assert pay["held_cents"] == 0 and pay["available_cents"] == 500  # hold released
    after = stack.json("GET", f"{stack.app}/ops/metrics", token=True)[1]
    assert after["payouts_failed"] == before["payouts_failed"] + 1
    stack.set_knobs(payout_fail_rate=0)

    stack.set_knobs(error_5xx_rate=1.0)
    assert stack.http("GET", f"{stack.app}/dashboard")[0] == 500
    assert stack.http("GET", f"{stack.app}/api/health")[0] == 200  # health is not affected
    stack.set_knobs(error_5xx_rate=0)

    assert stack.json("GET", f"{stack.app}/ops/ledger/check", token=True)[1]["ok"] is True
    knobs = stack.set_knobs(ledger_violation=True)
    assert knobs["ledger_violation"] is True
    status, check = stack.json("GET", f"{stack.app}/ops/ledger/check", token=True)
    assert status == 200 and check["ok"] is False
    assert any(v["check"] == "balance_mismatch" for v in check["violations"]), check
    stack.set_knobs(ledger_violation=False)
    assert stack.json("GET", f"{stack.app}/ops/ledger/check", token=True)[1]["ok"] is True
    assert stack.json("GET", f"{stack.app}/ops/knobs", token=True)[1] == {
        "health_red": False, "error_5xx_rate": 0.0, "payout_fail_rate": 0.0,
        "ledger_violation": False}


def test_login_dashboard_and_smoke_script(stack: Stack) -> None:
    assert stack.http("GET", f"{stack.edge}/dashboard")[0] == 302
    status, headers, _ = stack.http("POST", f"{stack.edge}/admin/login",
                                    {"username": "admin", "password": "wrong"})
    assert status == 401
    status, headers, _ = stack.http("POST", f"{stack.edge}/admin/login",
                                    {"username": "admin", "password": stack.admin_password})
    assert status == 200 and "paybox_session=" in headers["Set-Cookie"]
    cookie = headers["Set-Cookie"].split(";")[0]
    status, _, page = stack.http("GET", f"{stack.edge}/dashboard", headers={"Cookie": cookie})
    assert status == 200 and "<title>Paybox Dashboard</title>" in page

    smoke = PAYBOX / "scripts" / "go_live_smoke.sh"
    r = subprocess.run(["bash", str(smoke), stack.edge], env=stack.env(), capture_output=True,
                       text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert len([x for x in r.stdout.splitlines() if x.startswith("ok ")]) == 3
    assert stack.admin_password not in r.stdout + r.stderr
    r = subprocess.run(["bash", str(smoke), stack.edge],
                       env=stack.env(PAYBOX_ADMIN_PASSWORD="not-it"), capture_output=True,
                       text=True, timeout=60, check=False)
    assert r.returncode != 0 and "FAIL admin login" in r.stdout
    assert "not-it" not in r.stdout + r.stderr


def test_webhook_signature_logged(stack: Stack) -> None:
    body = json.dumps({"type": "payout.paid", "id": "evt_" + secrets.token_hex(4)}).encode()
    status, _, _ = stack.http("POST", f"{stack.edge}/webhooks/psp", raw=body,
                              headers={"X-Paybox-Signature": stack.sign(body)})
    assert status == 200
    status, _, _ = stack.http("POST", f"{stack.edge}/webhooks/psp", raw=body,
                              headers={"X-Paybox-Signature": "0" * 64})
    assert status == 401
    logs = stack.compose("logs", "--no-color", "app").stdout
    assert "Signature Verified" in logs and "Signature Invalid" in logs
    for secret in (stack.admin_password, stack.webhook_secret, stack.ops_token):
        assert secret not in logs
    metrics = stack.json("GET", f"{stack.app}/ops/metrics", token=True)[1]
    assert metrics["webhooks_verified"] >= 1 and metrics["webhooks_invalid"] >= 1


def _inspect(ref: str) -> dict:
    r = subprocess.run(["docker", "image", "inspect", ref], capture_output=True, text=True,
                       check=True)
    return json.loads(r.stdout)[0]


def test_images_carry_revision_labels_and_pull_from_registry(stack: Stack) -> None:
    for tag in ("v1", "v2"):
        labels = _inspect(f"{REGISTRY}/paybox/app:{tag}")["Config"]["Labels"]
        assert labels[LABEL] == stack.revisions[tag]
        assert labels["org.opencontainers.image.version"] == tag
    assert len(_inspect(f"{REGISTRY}/paybox/edge:v1")["Config"]["Labels"][LABEL]) == 40

    ref = f"{REGISTRY}/paybox/app:v2"
    # untag locally (fails harmlessly if another session runs a v2 container right now)
    subprocess.run(["docker", "rmi", ref], capture_output=True, check=False)
    r = subprocess.run(["docker", "pull", ref], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    img = _inspect(ref)
    assert img["Config"]["Labels"][LABEL] == stack.revisions["v2"]
    assert any(d.startswith(f"{REGISTRY}/paybox/app@sha256:") for d in img["RepoDigests"])


def test_cutover_v1_to_v2_and_rollback(stack: Stack) -> None:
    """Runbook B + rollback, by hand: maintenance, deploy v2, migrate, verify, roll back."""
    acct = _acct()
    stack.json("POST", f"{stack.app}/api/deposits", {"account": acct, "amount_cents": 1000})
    stack.set_maintenance(True)
    try:
        stack.compose("pull", "-q", "app", PAYBOX_APP_TAG="v2")
        stack.compose("up", "-d", "--wait", "--no-deps", "app", PAYBOX_APP_TAG="v2")
        status, body = stack.json("GET", f"{stack.app}/api/health")
        assert status == 200 and body["version"] == "v2" and body["schema"] == "behind"
        assert body["revision"] == stack.revisions["v2"]

        out = stack.compose("run", "--rm", "--no-deps", "-T", "app", "alembic", "upgrade",
                            "head", PAYBOX_APP_TAG="v2")
        assert "0002_payout_idempotency" in out.stderr + out.stdout
        status, body = stack.json("GET", f"{stack.app}/api/health")
        assert body["schema"] == "0002_payout_idempotency", body
        assert stack.http("GET", f"{stack.edge}/api/health")[0] == 503  # still behind the page

        key = acct + "-p"
        s1, p1 = stack.json("POST", f"{stack.app}/api/payouts",
                            {"account": acct, "amount_cents": 100, "idempotency_key": key})
        s2, p2 = stack.json("POST", f"{stack.app}/api/payouts",
                            {"account": acct, "amount_cents": 100, "idempotency_key": key})
        assert (s1, s2) == (201, 200) and p2["replay"] is True
        assert p2["payout_id"] == p1["payout_id"] and p2["available_cents"] == 900

        # rollback: downgrade with the v2 image (v1 does not ship 0002), redeploy v1
        stack.compose("run", "--rm", "--no-deps", "-T", "app", "alembic", "downgrade",
                      "0001_ledger", PAYBOX_APP_TAG="v2")
        stack.compose("up", "-d", "--wait", "--no-deps", "app", PAYBOX_APP_TAG="v1")
        status, body = stack.json("GET", f"{stack.app}/api/health")
        assert status == 200 and body["version"] == "v1" and body["schema"] == "0001_ledger"
        assert stack.json("GET", f"{stack.app}/ops/ledger/check", token=True)[1]["ok"] is True
    finally:
        stack.compose("up", "-d", "--wait", "--no-deps", "app", PAYBOX_APP_TAG="v1", check=False)
    stack.set_maintenance(False)
    assert stack.http("GET", f"{stack.edge}/api/health")[0] == 200
