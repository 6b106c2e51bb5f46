"""maintenance on/off and traffic open/close against the real paybox edge."""

from __future__ import annotations

import pytest

from runbook.steps.maintenance import run as maintenance
from runbook.steps.traffic import run as traffic

pytestmark = pytest.mark.docker


def test_maintenance_on_shows_the_page_and_off_lets_traffic_through(stack, run_step):
    on = run_step(maintenance, params={"mode": "on"})
    assert "maintenance on" in on.result.summary
    status, body = stack.http("GET", f"http://127.0.0.1:{stack.edge_port}/")
    assert status == 503 and "Scheduled maintenance" in body

    off = run_step(maintenance, params={"mode": "off"})
    assert "HTTP 200" in off.result.summary
    status, _ = stack.http("GET", f"http://127.0.0.1:{stack.edge_port}/api/health")
    assert status == 200


def test_wrong_ops_token_fails_without_echoing_it(stack, run_step):
    target = stack.target(maintenance={"token": "not-the-token-123"})
    out = run_step(maintenance, target=target, params={"mode": "on"}, expect_failure=True)
    assert "refused the ops token" in out.message
    assert "not-the-token-123" not in out.message


def test_bad_mode_is_refused(stack, run_step):
    out = run_step(maintenance, params={"mode": "maybe"}, expect_failure=True)
    assert "'on' or 'off'" in out.message


def test_traffic_close_then_open(stack, run_step):
    closed = run_step(traffic, params={"action": "close"})
    assert closed.result.facts["traffic"] == "closed"
    assert stack.http("GET", f"http://127.0.0.1:{stack.edge_port}/")[0] == 503
    opened = run_step(traffic, params={"action": "open"})
    assert opened.result.facts["traffic"] == "open"
    assert stack.http("GET", f"http://127.0.0.1:{stack.edge_port}/api/health")[0] == 200


def test_command_switch_runs_argv_and_verifies(stack, run_step, tmp_path):
    url = f"http://127.0.0.1:{stack.edge_port}/ops/maintenance"
    script = tmp_path / "switch.py"
    script.write_text(
        "import json, sys, urllib.request\n"
        "req = urllib.request.Request(sys.argv[1], data=json.dumps({'enabled': sys.argv[2] == 'on'})"
        ".encode(), method='POST', headers={'X-Ops-Token': sys.argv[3], "
        "'Content-Type': 'application/json'})\n"
        "urllib.request.urlopen(req, timeout=5)\n")
    import sys
    target = stack.target(maintenance={
        "kind": "command",
        "on": [sys.executable, str(script), url, "on", stack.ops_token],
        "off": [sys.executable, str(script), url, "off", stack.ops_token],
    })
    run_step(maintenance, target=target, params={"mode": "on"})
    assert stack.http("GET", f"http://127.0.0.1:{stack.edge_port}/")[0] == 503
    run_step(maintenance, target=target, params={"mode": "off"})
