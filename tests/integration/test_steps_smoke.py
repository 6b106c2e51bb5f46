"""smoke: the paybox smoke script runs with shell=False; failures show the masked tail."""

from __future__ import annotations

import pytest

from runbook.steps.smoke import run as smoke

pytestmark = pytest.mark.docker


def test_smoke_script_passes_against_the_app(stack, run_step):
    out = run_step(smoke)
    assert out.result.summary.startswith("smoke passed")
    assert out.result.facts == {"smoke": "passed"}


def test_failing_script_shows_masked_tail(stack, run_step, tmp_path):
    script = tmp_path / "smoke.sh"
    script.write_text('echo "checking $1"\necho "token=$SMOKE_TOKEN" >&2\nexit 3\n')
    target = stack.target(smoke={"path": str(script), "env": {"SMOKE_TOKEN": stack.ops_token}})
    out = run_step(smoke, target=target, expect_failure=True)
    assert "exited 3" in out.message
    assert "checking http://127.0.0.1" in out.message
    assert "token=****" in out.message


def test_unconfigured_smoke_fails_unless_optional(stack, run_step):
    target = stack.target(smoke=None)
    out = run_step(smoke, target=target, expect_failure=True)
    assert "no smoke script configured" in out.message
    ok = run_step(smoke, target=target, params={"optional": True})
    assert "no smoke script configured" in ok.result.summary


def test_smoke_sees_through_the_maintenance_page_with_the_ops_token(stack, run_step):
    stack.set_maintenance(True)
    assert stack.http("GET", f"http://127.0.0.1:{stack.edge_port}/")[0] == 503
    out = run_step(smoke, facts={"deployed_tag": "v1"})
    assert "all checks passed" in out.result.summary
