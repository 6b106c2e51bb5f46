"""health: health JSON, admin login, dashboard; retried until the deadline."""

from __future__ import annotations

import time

import pytest

from runbook.steps.health import run as health

pytestmark = pytest.mark.docker


def test_health_green_on_v1(stack, run_step):
    out = run_step(health, facts={"deployed_tag": "v1",
                                  "deployed_revision": stack.revisions["v1"],
                                  "alembic_after": "0001_ledger"})
    lines = out.result.summary.splitlines()
    assert len(lines) == 3, lines
    assert lines[0].startswith("health /api/health: ok") and "version v1" in lines[0]
    assert lines[1].startswith("admin login /admin/login: ok")
    assert lines[2].startswith("dashboard /dashboard: ok")


def test_health_never_green_fails_at_the_deadline(stack, run_step, fake_clock):
    stack.set_knobs(health_red=True)
    clock = fake_clock
    t0 = time.monotonic()
    out = run_step(health, timeout=60, clock=clock, sleep=clock.sleep, expect_failure=True)
    assert "not green" in out.message and "degraded" in out.message
    assert clock.now >= 1000 + 60, "it should keep retrying until the deadline"
    assert len(clock.sleeps) >= 4, "it should back off between attempts"
    assert clock.sleeps[1] > clock.sleeps[0] * 1.2, "backoff should grow"
    assert time.monotonic() - t0 < 20, "the injected clock means no real waiting"


def test_wrong_admin_password_fails_without_echoing_it(stack, run_step, fake_clock):
    clock = fake_clock
    target = stack.target(admin_login={"password": "wrong-pw-4242"})
    out = run_step(health, target=target, timeout=5, clock=clock, sleep=clock.sleep,
                   expect_failure=True)
    assert "admin login" in out.message and "401" in out.message
    assert "wrong-pw-4242" not in out.message
    assert "health /api/health: ok" in out.message, "passed checks are listed"


def test_version_mismatch_is_reported(stack, run_step, fake_clock):
    clock = fake_clock
    out = run_step(health, facts={"deployed_tag": "v2"}, timeout=3, clock=clock,
                   sleep=clock.sleep, expect_failure=True)
    assert "version='v1' (expected 'v2')" in out.message
