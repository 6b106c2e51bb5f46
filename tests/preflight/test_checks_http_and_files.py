"""Release freeze against the fake GitHub over HTTP; prod config from generated env files;
RC evidence from generated JUnit and manifests; team scripts. Every result is leak-checked."""

from __future__ import annotations

import socket
import stat
import tomllib

import pytest

from bot.dev.rehearse.sample import prod_config_rules, rc_evidence_toml
from runbook.checks import build_specs, prod_config, rc_evidence, release_freeze, team_scripts
from runbook.checks.base import CheckContext, Status
from runbook.checks.config import PreflightConfig
from runbook.checks.runner import run_checks
from tests.preflight.conftest import V1, V2
from tests.support.preflight import assert_no_secret

TOKEN = "ghp_faketoken0123456789abcd"


def freeze(gh, tag="v2", sha=V2, **extra):
    cfg = PreflightConfig.model_validate({"release_freeze": {
        "repo": "acme/paybox", "api_url": gh.url + "/api/v3", "token": TOKEN, **extra}})
    report = run_checks(build_specs(cfg, ["release_freeze"]), rc_tag=tag, rc_sha=sha)
    result = report.results["release_freeze"]
    assert_no_secret(result, {"token": TOKEN})
    return result


def test_locked_main_and_annotated_tag_pass(gh):
    r = freeze(gh)
    assert r.status is Status.OK, r.finding
    assert r.facts["rc_sha"] == V2
    assert any("annotated tag (2 tag object(s))" in d for d in r.details), r.details
    asked = gh.requests
    assert asked and all(q["api_version"] == "2022-11-28" and q["authorized"] for q in asked)


def test_lightweight_tag_and_ruleset_without_bypass_pass(gh):
    gh.state["protection"] = "ruleset"
    r = freeze(gh, tag="v1", sha=V1)
    assert r.status is Status.OK, r.finding
    assert "ruleset" in r.finding


@pytest.mark.parametrize("mode,status,words", [
    ("unlocked", Status.FAIL, "NOT locked"),
    ("restrictions-only", Status.FAIL, "NOT locked"),
    ("ruleset-bypass", Status.FAIL, "bypass actors"),
    ("404", Status.UNKNOWN, "cannot tell"),
])
def test_unlocked_main_never_passes(gh, mode, status, words):
    gh.state["protection"] = mode
    r = freeze(gh)
    assert r.status is status, r.finding
    assert words in r.finding


def test_tag_moved_or_short_sha_fails(gh):
    r = freeze(gh, sha=V1)
    assert r.status is Status.FAIL and "the run pins" in r.finding and V1[:12] in r.finding
    r = freeze(gh, sha=V2[:12])
    assert r.status is Status.FAIL and "full 40-character" in r.finding
    r = freeze(gh, tag="v9")
    assert r.status is Status.FAIL and "tag v9 not found" in r.finding


def test_rate_limit_is_waited_out_when_it_fits(gh):
    gh.state["ratelimit_remaining_zero"] = 1
    gh.state["ratelimit_reset_in"] = 1
    r = freeze(gh)
    assert r.status is Status.OK, r.finding
    gh.state["ratelimit_remaining_zero"] = 1
    gh.state["ratelimit_reset_in"] = 3600
    r = freeze(gh)
    assert r.status is Status.FAIL and "rate limit" in r.finding


def test_unreachable_github_and_bad_token_are_clear(gh):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = PreflightConfig.model_validate({"release_freeze": {
        "repo": "acme/paybox", "api_url": f"http://127.0.0.1:{port}", "token": TOKEN}})
    r = run_checks(build_specs(cfg, ["release_freeze"]), rc_tag="v2",
                   rc_sha=V2).results["release_freeze"]
    assert r.status is Status.FAIL and "unreachable" in r.finding and "api_url" in r.finding
    cfg = PreflightConfig.model_validate({"release_freeze": {
        "repo": "acme/paybox", "api_url": gh.url, "token": "ghp_wrongtoken00000000"}})
    r = run_checks(build_specs(cfg, ["release_freeze"]), rc_tag="v2",
                   rc_sha=V2).results["release_freeze"]
    assert r.status is Status.FAIL and "401" in r.finding


def sample_rules(stripe_api_url="https://stripe.invalid"):
    """The sample stack's prod_config rules, as bot/dev/rehearse/sample.py configures them."""
    return tomllib.loads(prod_config_rules(stripe_api_url))["preflight"]["prod_config"]["rules"]


def prod(env_file, rules=None, **extra):
    cfg = PreflightConfig.model_validate({"prod_config": {
        "source": "env_file", "env_file": str(env_file),
        "rules": sample_rules() if rules is None else rules, **extra}})
    return run_checks(build_specs(cfg, ["prod_config"])).results["prod_config"]


def env_values(path):
    from runbook.adapters.envsource import from_file

    return {k: v for k, v in from_file(path).items() if k not in ("TRUSTED_PROXIES",
                                                                   "BOOTSTRAP_ENABLED")}


def test_prod_config_live_env_passes_and_test_keys_fail(evidence, gh, bot_db_url):
    live, test = evidence / "env" / "prod-live.env", evidence / "env" / "prod-test-keys.env"
    for path in (live, test):  # point DATABASE_URL at a database that answers
        text = path.read_text().replace("postgresql://postgres@127.0.0.1:5432/paybox", bot_db_url)
        path.write_text(text)
    r = prod(live, sample_rules(gh.url))
    assert r.status is Status.OK, r.details
    assert any("livemode: true" in d for d in r.details)
    assert_no_secret(r, env_values(live))
    r = prod(test, sample_rules(gh.url))
    assert r.status is Status.FAIL
    for words in ("STRIPE_SECRET_KEY does not match ^(sk|rk)_live_",
                  "expected a live Stripe secret or restricted key",
                  "ADYEN_CHECKOUT_URL does not match", "ADYEN_CLIENT_KEY does not match ^live_",
                  "trusts everyone", "proxy.internal",
                  "BOOTSTRAP_ENABLED must be 'false' (it is 'true')"):
        assert any(words in d for d in r.details), (words, r.details)
    assert_no_secret(r, env_values(test))
    gh.state["stripe_livemode"] = False
    r = prod(live, sample_rules(gh.url))
    assert r.status is Status.FAIL and "livemode: false" in r.finding


def test_prod_config_missing_env_file_and_dead_database(tmp_path):
    r = prod(tmp_path / "nope.env")
    assert r.status is Status.FAIL and "cannot read env file" in r.finding
    env = tmp_path / "x.env"
    env.write_text("DATABASE_URL=postgresql://u:s3cretpassw0rd@127.0.0.1:1/db\n")
    r = prod(env, [{"key": "DATABASE_URL", "check": "database"},
                   {"key": "APP_REGION", "equals": "eu"}])
    assert "does not answer a read-only query" in r.finding
    assert any("APP_REGION is not set" in d for d in r.details), r.details
    assert_no_secret(r, {"pw": "s3cretpassw0rd"})


def evidence_check(base, tag="v2", url=None, **extra):
    """The sample's rc_evidence (bot/dev/rehearse/sample.py), its payouts route at ``url``."""
    sample = tomllib.loads(rc_evidence_toml(str(base / "evidence" / "{tag}"), url or "x",
                                            "GET"))["preflight"]["rc_evidence"]
    if url is None:
        sample.pop("routes")
    cfg = PreflightConfig.model_validate({"rc_evidence": {**sample, **extra}})
    ctx = CheckContext("rc_evidence", cfg.rc_evidence, rc_tag=tag)
    return rc_evidence.run(ctx)


def test_rc_evidence_pass_and_fail(evidence, gh):
    r = evidence_check(evidence, url=gh.url + "/v1/balance")
    assert r.status is Status.OK, r.finding
    assert "E2E money loop 2/2" in r.finding and "backend regression 8/8" in r.finding
    assert "3 artifacts match SHA256SUMS" in r.finding
    r = evidence_check(evidence, tag="v2-failing", url=gh.url + "/v1/balance")
    assert r.status is Status.FAIL
    assert "E2E money loop 1/2 passed" in r.finding and "backend regression 7/8" in r.finding
    assert any("failure: com.paybox.BackendRegressionTest.test_payout_idempotency_key" in d
               for d in r.details), r.details


def test_rc_evidence_tampered_missing_extra_and_malformed(evidence, gh):
    art = evidence / "evidence" / "v2" / "artifacts"
    (art / "sbom.json").write_text("{}")
    (art / "screenshots" / "dashboard.txt").unlink()
    (art / "stray.bin").write_text("x")
    junit = evidence / "evidence" / "v2" / "junit" / "e2e-money-loop.xml"
    junit.write_text("<testsuites><testsuite>")
    r = evidence_check(evidence, url=gh.url + "/nope")
    assert r.status is Status.FAIL
    assert "not well-formed XML" in r.finding and "e2e-money-loop.xml" in r.finding
    assert "route payouts" in r.finding and "404" in r.finding
    for words in ("sha256 mismatch: sbom.json", "missing: screenshots/dashboard.txt",
                  "extra (not in the manifest): stray.bin"):
        assert words in r.details, r.details
    junit.write_text("<testsuites><testsuite name='empty'/></testsuites>")
    r = evidence_check(evidence)
    assert "E2E money loop: 0 test case(s) in junit/e2e-money-loop.xml, at least 1 expected" \
        in r.finding, r.finding


def test_team_scripts_exit_code_tail_and_masking(tmp_path):
    script = tmp_path / "verify.sh"
    script.write_text("#!/bin/sh\necho checking\necho \"token is $API_TOKEN\"\nexit ${CODE:-0}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    secret = "tok-very-secret-123456"
    cfg = PreflightConfig.model_validate({"team_scripts": [
        {"name": "verify_prod_env", "command": [str(script)],
         "env": {"API_TOKEN": secret, "CODE": "0"}},
        {"name": "drill", "command": [str(script)], "env": {"API_TOKEN": secret, "CODE": "3"}},
    ]})
    r = team_scripts.run(CheckContext("team_scripts", cfg.team_scripts))
    assert r.status is Status.FAIL and "drill exited 3" in r.finding
    assert any("checking" in d for d in r.details)
    assert_no_secret(r, {"API_TOKEN": secret})


def test_release_freeze_without_rc_tag_fails_clearly(gh):
    cfg = PreflightConfig.model_validate({"release_freeze": {"repo": "acme/paybox",
                                                             "api_url": gh.url}})
    r = run_checks(build_specs(cfg, ["release_freeze"])).results["release_freeze"]
    assert r.status is Status.FAIL and "/golive start" in r.finding
    assert release_freeze.NAME == "release_freeze" and prod_config.NAME == "prod_config"
