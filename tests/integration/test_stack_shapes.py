"""Every stack-specific HTTP shape is configuration: the health contract (nested ``expect``,
dotted version/revision/schema fields, fast fail on a mismatch that repeats), the login (form
or JSON, cookie or bearer) whose session the dashboard and read-only checks use, an HTTP
switch by PUT with a bearer header, and a smoke script run by its shebang. All through real
HTTP against ``tests/support/shape_server.py``; no Docker.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from runbook.context import StepContext, StepResult
from runbook.errors import StepFailed
from runbook.steps.health import run as health
from runbook.steps.maintenance import run as maintenance
from runbook.steps.rollback import verify_readonly
from runbook.steps.smoke import run as smoke
from runbook.steps.traffic import run as traffic
from runbook.target import TargetConfig
from tests.support.shape_server import Shape, ShapeServer

SHA = "5e1f0c9a7b3d2e4f6a8b0c1d2e3f4a5b6c7d8e9f"
HEALTH = {"state": "up", "build": {"release": "v2", "commit": SHA, "node": "api-1"},
          "checks": {"schema": "0002_fees", "ledger": "reachable", "cache": "warm"},
          "regions": ["eu", "us"]}
FACTS = {"deployed_tag": "v2", "deployed_revision": SHA, "alembic_after": "0002_fees"}


@pytest.fixture
def server() -> Iterator[ShapeServer]:
    srv = ShapeServer(Shape(health=json.loads(json.dumps(HEALTH)))).start()
    yield srv
    srv.stop()


def target(srv: ShapeServer, **sections: Any) -> TargetConfig:
    s = srv.shape
    data: dict[str, Any] = {
        "name": "ledgerline",
        "public_url": srv.url,
        "internal_url": srv.url,
        "health": {"path": s.health_path,
                   "expect": {"state": "up", "checks": {"ledger": "reachable"},
                              "regions": ["eu", "us"]},
                   "version_field": "build.release", "revision_field": "build.commit",
                   "schema_field": "checks.schema"},
        "admin_login": {"path": s.login_path, "username": s.user, "password": s.password,
                        "body": "json", "username_field": "email", "password_field": "secret",
                        "session": "bearer", "token_field": "session.token",
                        "success_status": 201},
        "dashboard": {"path": "/console", "expect_text": "Ledger console"},
        "readonly_paths": ["/console", "/reports"],
        "maintenance": {"kind": "http", "url": srv.url + s.switch_path, "method": "PUT",
                        "on_body": {"mode": "down"}, "off_body": {"mode": "up"},
                        "token": s.switch_token, "token_header": "Authorization"},
        "maintenance_page": {"path": "/", "status": 503, "expect_text": s.maintenance_text},
        "probe": {"backoff_initial_s": 0.5, "backoff_max_s": 8, "jitter": 0},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return TargetConfig.model_validate(data)


class Outcome:
    def __init__(self, result: StepResult | None, error: StepFailed | None, texts: list[str]):
        self.result, self.error, self.texts = result, error, texts

    @property
    def message(self) -> str:
        return self.error.message if self.error else ""

    @property
    def summary(self) -> str:
        return self.result.summary if self.result else ""


def run(fn: Callable[[StepContext], StepResult], tgt: TargetConfig, clock: Any, *,
        srv: ShapeServer | None = None, params: dict[str, Any] | None = None,
        facts: dict[str, Any] | None = None, timeout: float = 300.0,
        fail: bool = False) -> Outcome:
    """Run a step with a fake clock; assert no secret (config or login token) in its output."""
    lines: list[str] = []
    ctx = StepContext(run_id=1, step_id="shape", params=dict(params or {}),
                      facts=dict(facts or {}), target=tgt, progress=lines.append,
                      deadline=clock() + timeout, clock=clock, sleep=clock.sleep,
                      secrets=tgt.secrets())
    result = error = None
    try:
        result = fn(ctx)
    except StepFailed as e:
        error = e
    texts = lines + ([result.summary, result.detail] if result else [error.message])
    secrets = set(tgt.secrets().values()) | (srv.tokens if srv else set())
    for text in texts:
        for s in secrets:
            assert s not in text, f"secret {s[:4]}… leaked: {text[:300]!r}"
    assert (error is not None) == fail, error.message if error else result
    return Outcome(result, error, texts)


# ---- the health contract -------------------------------------------------------------------

def test_nested_expect_and_dotted_fields_pass_in_the_teams_words(server, fake_clock):
    out = run(health, target(server, admin_login={"path": None}, dashboard={"path": None}),
              fake_clock, facts=FACTS)
    line = out.summary
    assert line.startswith("health /healthz: ok"), line
    for said in ("state up", "checks.ledger reachable", "version (build.release) v2",
                 "revision (build.commit) 5e1f0c9", "schema (checks.schema) 0002_fees"):
        assert said in line, (said, line)
    assert " db " not in line and "status" not in line, "no paybox words in the result"
    assert len(server.requests_to("/healthz")) == 1


@pytest.mark.parametrize("expect, shown", [
    ({"checks": {"ledger": "reachable", "cache": "cold"}}, "checks.cache='warm' (expected 'cold')"),
    ({"checks": {"queue": "ok"}}, "checks.queue missing (expected 'ok')"),
    ({"regions": ["eu"]}, """regions='["eu", "us"]' (expected '["eu"]')"""),
    ({"build": "v2"}, "build="),
])
def test_nested_expect_mismatch_fails_naming_the_path(server, fake_clock, expect, shown):
    tgt = target(server, health={"expect": expect}, admin_login={"path": None},
                 dashboard={"path": None})
    out = run(health, tgt, fake_clock, facts=FACTS, fail=True)
    assert shown in out.message, out.message


@pytest.mark.parametrize("fact, value, shown", [
    ("deployed_tag", "v3", "build.release='v2' (expected 'v3')"),
    ("deployed_revision", "0badc0de" * 5, "build.commit='5e1f0c9a7b' (expected '0badc0de0b')"),
    ("alembic_after", "0003_more", "checks.schema='0002_fees' (expected '0003_more')"),
])
def test_dotted_version_revision_and_schema_fields_are_compared(server, fake_clock, fact,
                                                                 value, shown):
    tgt = target(server, admin_login={"path": None}, dashboard={"path": None})
    out = run(health, tgt, fake_clock, facts={**FACTS, fact: value}, fail=True)
    assert shown in out.message, out.message


def test_unset_fields_are_not_checked(server, fake_clock):
    tgt = target(server, health={"version_field": None, "revision_field": None,
                                 "schema_field": None},
                 admin_login={"path": None}, dashboard={"path": None})
    out = run(health, tgt, fake_clock, facts={"deployed_tag": "v9", "deployed_revision": "f" * 40,
                                              "alembic_after": "0009"})
    assert "version" not in out.summary and "state up" in out.summary


def test_a_mismatch_that_repeats_identically_fails_fast_showing_the_body(server, fake_clock):
    tgt = target(server, admin_login={"path": None}, dashboard={"path": None})
    server.shape.health["note"] = f"db password {tgt.admin_login.password.get_secret_value()}"
    t0 = time.monotonic()
    out = run(health, tgt, fake_clock, facts={**FACTS, "deployed_tag": "v3"}, timeout=300,
              fail=True)
    assert len(server.requests_to("/healthz")) == 3, "three identical answers, then it stops"
    assert fake_clock.now - 1000 < 30, "it gave up long before the 300 s deadline"
    assert time.monotonic() - t0 < 10
    msg = out.message
    assert "build.release='v2' (expected 'v3')" in msg
    assert "3 times in a row" in msg
    assert '"release":"v2"' in msg, "the body is shown"
    assert "db password ****" in msg, "secrets in the body are masked"


def test_repeats_is_configurable_and_zero_retries_until_the_deadline(server, fake_clock):
    tgt = target(server, health={"mismatch_repeats": 0}, admin_login={"path": None},
                 dashboard={"path": None})
    out = run(health, tgt, fake_clock, facts={**FACTS, "deployed_tag": "v3"}, timeout=60,
              fail=True)
    assert fake_clock.now >= 1000 + 60, "kept retrying until the deadline"
    assert len(server.requests_to("/healthz")) > 3
    assert "in a row" not in out.message


def test_an_unhealthy_status_is_retried_not_failed_fast(server, fake_clock):
    tgt = target(server, admin_login={"path": None}, dashboard={"path": None})
    server.maintenance = True  # health answers 503 with the same body every time
    out = run(health, tgt, fake_clock, facts=FACTS, timeout=60, fail=True)
    assert fake_clock.now >= 1000 + 60 and "HTTP 503" in out.message
    assert "in a row" not in out.message


def test_no_health_path_says_what_to_configure(server, fake_clock):
    tgt = target(server, health={"path": None})
    out = run(health, tgt, fake_clock, fail=True)
    assert "set [target.health] path" in out.message
    assert not server.seen


# ---- login and the session it produces -----------------------------------------------------

@pytest.mark.parametrize("body, session", [("json", "bearer"), ("form", "cookie")])
def test_login_shape_and_its_session_reach_the_dashboard_and_readonly_pages(fake_clock, body,
                                                                           session):
    srv = ShapeServer(Shape(health=json.loads(json.dumps(HEALTH)), login_body=body,
                            session=session, login_status=201 if session == "bearer" else 200)
                      ).start()
    try:
        login = {"body": body, "session": session,
                 "success_status": srv.shape.login_status}
        if session == "cookie":
            login["token_field"] = None
        tgt = target(srv, admin_login=login)
        out = run(health, tgt, fake_clock, srv=srv, facts=FACTS)
        lines = out.summary.splitlines()
        assert [x.split(":")[0] for x in lines] == [
            "health /healthz", "admin login /auth/session", "dashboard /console"], lines
        assert ("bearer token from session.token" if session == "bearer"
                else "session cookie set") in lines[1]
        posted = srv.requests_to("/auth/session")[0]
        assert ("json" if body == "json" else "x-www-form-urlencoded") in \
            posted.headers["Content-Type"]
        console = srv.requests_to("/console")[-1]
        if session == "bearer":
            assert console.headers["Authorization"].startswith("Bearer tok-")
        else:
            assert "sid=tok-" in console.headers["Cookie"]

        ro = run(verify_readonly, tgt, fake_clock, srv=srv)
        assert "read-only /reports: ok" in ro.summary, ro.summary
        reports = srv.requests_to("/reports")[-1]
        if session == "bearer":
            assert reports.headers["Authorization"].split()[1] in srv.tokens
    finally:
        srv.stop()


def test_a_missing_token_field_fails_with_the_answers_keys_not_its_values(server, fake_clock):
    tgt = target(server, admin_login={"token_field": "access_token"})
    out = run(health, tgt, fake_clock, srv=server, facts=FACTS, timeout=5, fail=True)
    assert "no token at 'access_token'" in out.message
    assert "its keys: expires_in, session" in out.message


def test_wrong_password_fails_without_echoing_it(server, fake_clock):
    tgt = target(server, admin_login={"password": "not-the-password-77"})
    out = run(health, tgt, fake_clock, facts=FACTS, timeout=5, fail=True)
    assert "admin login: HTTP 401 (expected 201)" in out.message
    assert "not-the-password-77" not in out.message


def test_bearer_login_config_needs_its_token_field():
    with pytest.raises(ValueError, match="token_field"):
        TargetConfig.model_validate({"admin_login": {"path": "/x", "username": "u",
                                                     "session": "bearer"}})


# ---- the HTTP switch -----------------------------------------------------------------------

def test_put_switch_with_a_bearer_header_flips_and_is_verified(server, fake_clock):
    tgt = target(server)
    on = run(maintenance, tgt, fake_clock, params={"mode": "on"})
    assert server.maintenance and f"found {server.shape.maintenance_text!r}" in on.summary
    sent = server.requests_to("/ops/maintenance")[-1]
    assert sent.method == "PUT"
    assert sent.headers["Authorization"] == f"Bearer {server.shape.switch_token}"
    assert json.loads(sent.body) == {"mode": "down"}

    opened = run(traffic, tgt, fake_clock, params={"action": "open"})
    assert not server.maintenance and opened.result.facts["traffic"] == "open"
    assert json.loads(server.requests_to("/ops/maintenance")[-1].body) == {"mode": "up"}


def test_switch_refusing_the_token_says_so_without_it(server, fake_clock):
    tgt = target(server, maintenance={"token": "wrong-token-4242"})
    out = run(maintenance, tgt, fake_clock, params={"mode": "on"}, fail=True)
    assert "refused the ops token in the Authorization header (HTTP 401)" in out.message
    assert "wrong-token-4242" not in out.message and not server.maintenance


def test_switch_method_and_success_status_are_configuration(server, fake_clock):
    tgt = target(server, maintenance={"method": "POST"})
    out = run(maintenance, tgt, fake_clock, params={"mode": "on"}, fail=True)
    assert "POST" in out.message and "HTTP 405 (expected 2xx)" in out.message
    tgt = target(server, maintenance={"success_status": [204]})
    out = run(maintenance, tgt, fake_clock, params={"mode": "on"}, fail=True)
    assert "HTTP 200 (expected 204)" in out.message


# ---- the smoke script ----------------------------------------------------------------------

def test_python_smoke_script_runs_by_its_shebang(server, fake_clock, tmp_path):
    script = tmp_path / "smoke.py"
    script.write_text("#!/usr/bin/env python3\nimport sys, urllib.request\n"
                      "r = urllib.request.urlopen(sys.argv[1] + '/healthz', timeout=5)\n"
                      "print('python', sys.version_info[0], 'health', r.status)\n")
    script.chmod(0o755)
    tgt = target(server, smoke={"path": str(script)})
    out = run(smoke, tgt, fake_clock)
    assert out.summary == "smoke passed: python 3 health 200", out.summary


def test_smoke_script_that_cannot_execute_says_what_to_do(server, fake_clock, tmp_path):
    script = tmp_path / "smoke.py"
    script.write_text("print('hi')\n")
    out = run(smoke, target(server, smoke={"path": str(script)}), fake_clock, fail=True)
    assert "is not executable" in out.message and "interpreter" in out.message
    script.chmod(0o755)
    out = run(smoke, target(server, smoke={"path": str(script)}), fake_clock, fail=True)
    assert "has no shebang line" in out.message
    ok = run(smoke, target(server, smoke={"path": str(script), "interpreter": ["python3"]}),
             fake_clock)
    assert ok.summary == "smoke passed: hi"


# ---- the health watch uses the same contract -----------------------------------------------

def _health_watch(tgt: TargetConfig) -> Any:
    from types import SimpleNamespace

    from bot.team_config import Thresholds
    from runbook.watches.config import WatchesConfig
    from runbook.watches.watchset import WatchSet

    cfg = {n: {"enabled": n == "health"} for n in
           ("health", "webhooks", "error_budget", "payouts", "ledger")}
    cfg["health"]["base"] = "internal"
    return WatchSet.from_config(SimpleNamespace(
        watches=WatchesConfig.model_validate(cfg), thresholds=Thresholds(), target=tgt))


def test_health_watch_judges_the_nested_contract(server):
    from datetime import UTC, datetime

    ws = _health_watch(target(server))
    assert not ws.problems, ws.problems
    good = ws.watches["health"].measure(datetime.now(UTC))
    assert good.phase == "Successful", good.summary
    server.shape.health["checks"]["ledger"] = "unreachable"
    bad = ws.watches["health"].measure(datetime.now(UTC))
    assert bad.phase == "Failed" and "checks.ledger='unreachable'" in bad.summary, bad.summary


def test_health_watch_without_a_health_path_is_not_built(server):
    ws = _health_watch(target(server, health={"path": None}))
    said = {**ws.problems, **getattr(ws, "off", {})}  # listed as off (or as a problem)
    assert "health" not in ws.watches and "[target.health] path" in said["health"]


def test_a_custom_header_carries_the_bare_token_unless_a_format_is_set(server, fake_clock):
    server.shape.switch_header, server.shape.switch_format = "X-Ops-Token", "{token}"
    tgt = target(server, maintenance={"token_header": "X-Ops-Token", "token_format": None})
    run(maintenance, tgt, fake_clock, params={"mode": "on"})
    assert server.requests_to("/ops/maintenance")[-1].headers["X-Ops-Token"] == \
        server.shape.switch_token


def test_no_url_says_what_to_set(server, fake_clock):
    out = run(health, target(server, internal_url="", public_url=""), fake_clock, fail=True)
    assert "[target] internal_url" in out.message and "set" in out.message
    out = run(maintenance, target(server, internal_url="", public_url=""), fake_clock,
              params={"mode": "on"}, fail=True)
    assert "set [target] public_url" in out.message


def test_a_shebang_naming_a_missing_interpreter_is_named(server, fake_clock, tmp_path):
    script = tmp_path / "smoke.py"
    script.write_text("#!/opt/nowhere/python3\nprint('hi')\n")
    script.chmod(0o755)
    out = run(smoke, target(server, smoke={"path": str(script)}), fake_clock, fail=True)
    assert "(its shebang: #!/opt/nowhere/python3)" in out.message, out.message
    assert "Traceback" not in out.message


def test_extra_login_fields_are_sent_with_the_credentials(server, fake_clock):
    tgt = target(server, admin_login={"extra_fields": {"grant_type": "password"}})
    run(health, tgt, fake_clock, srv=server, facts=FACTS)
    sent = json.loads(server.requests_to("/auth/session")[0].body)
    assert sent["grant_type"] == "password" and sent["email"] == server.shape.user
