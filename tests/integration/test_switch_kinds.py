"""Every switch kind the config offers, flipped and verified on the real paybox stack.

Maintenance as ``http`` (the edge's ops endpoint), ``command`` (argv) and ``compose-service``
(the stack's ``maintenance`` service); and a separate ``[target.traffic]`` switch (the edge
itself as a compose service: closed means no ingress at all).
"""

from __future__ import annotations

import json
import sys

import pytest

from runbook.steps.deploy import run as deploy
from runbook.steps.maintenance import run as maintenance
from runbook.steps.rollback import revert_deploy
from runbook.steps.traffic import run as traffic

pytestmark = pytest.mark.docker


def public(stack, path="/api/health"):
    try:
        return stack.http("GET", f"http://127.0.0.1:{stack.edge_port}{path}")
    except OSError as e:
        return None, str(e)


def running_services(stack) -> set[str]:
    r = stack.compose("ps", "--all", "--format", "json")
    rows = [json.loads(x) for x in r.stdout.splitlines() if x.strip().startswith("{")]
    return {f"{row['Service']}:{row['State']}" for row in rows}


def command_switch(stack, tmp_path) -> dict:
    url = f"http://127.0.0.1:{stack.edge_port}/ops/maintenance"
    script = tmp_path / "switch.py"
    script.write_text(
        "import json, os, sys, urllib.request\n"
        "req = urllib.request.Request(sys.argv[1], data=json.dumps({'enabled': sys.argv[2] =="
        " 'on'}).encode(), method='POST', headers={'X-Ops-Token': os.environ['OPS_TOKEN'],"
        " 'Content-Type': 'application/json'})\n"
        "urllib.request.urlopen(req, timeout=5)\n")
    return {"kind": "command", "on": ["env", f"OPS_TOKEN={stack.ops_token}", sys.executable,
                                       str(script), url, "on"],
            "off": ["env", f"OPS_TOKEN={stack.ops_token}", sys.executable, str(script), url,
                    "off"]}


@pytest.mark.parametrize("kind", ["http", "command", "compose-service"])
def test_each_maintenance_switch_kind_flips_and_is_verified(stack, run_step, tmp_path, kind):
    switch = {"http": None, "command": command_switch(stack, tmp_path),
              "compose-service": {"kind": "compose-service", "service": "maintenance"}}[kind]
    target = stack.target(maintenance=switch) if switch else stack.target()
    try:
        on = run_step(maintenance, target=target, params={"mode": "on"})
        assert "Scheduled maintenance" in on.result.summary, on.result.summary
        status, body = public(stack, "/")
        assert status == 503 and "Scheduled maintenance" in body, \
            f"{kind}: the public must see the maintenance page, got {status}"

        off = run_step(maintenance, target=target, params={"mode": "off"})
        assert "HTTP 200" in off.result.summary
        assert public(stack)[0] == 200, f"{kind}: traffic must flow after maintenance off"
    finally:
        stack.set_maintenance(False)
        stack.compose("rm", "--stop", "--force", "maintenance", check=False)


def test_compose_service_off_leaves_nothing_that_blocks_the_next_deploy(stack, run_step):
    target = stack.target(maintenance={"kind": "compose-service", "service": "maintenance"})
    try:
        run_step(maintenance, target=target, params={"mode": "on"})
        assert "maintenance:running" in running_services(stack)
        run_step(maintenance, target=target, params={"mode": "off"})
        assert not any(s.startswith("maintenance:") for s in running_services(stack)), \
            "maintenance off must not leave an exited container behind"
        facts = dict(run_step(deploy, target=target, params={"tag": "v2"}).result.facts)
        assert stack.running_image()["image"].endswith(":v2")
        run_step(revert_deploy, target=target, facts=facts)
        assert stack.running_image()["image"].endswith(":v1")
    finally:
        stack.compose("rm", "--stop", "--force", "maintenance", check=False)


def test_a_separate_traffic_switch_closes_ingress_and_opening_lifts_maintenance(stack, run_step):
    target = stack.target(traffic={"kind": "compose-service", "service": "edge"})
    try:
        run_step(maintenance, target=target, params={"mode": "on"})
        closed = run_step(traffic, target=target, params={"action": "close"})
        assert closed.result.facts["traffic"] == "closed"
        assert public(stack)[0] is None, "with ingress closed nothing answers on the public URL"

        opened = run_step(traffic, target=target, params={"action": "open"})
        assert opened.result.facts == {"traffic": "open", "maintenance": "off"}
        status, body = public(stack)
        assert status == 200, f"traffic open must reach the app, got {status}: {body[:200]}"
        assert "public /api/health: HTTP 200" in opened.result.summary
    finally:
        stack.compose("up", "-d", "--wait", "--no-build", "edge", check=False)
        stack.set_maintenance(False)
