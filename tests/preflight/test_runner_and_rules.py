"""The preflight runner (concurrency, timeouts, crashes) and the pure rules of the checks."""

from __future__ import annotations

import threading
import time

import pytest

from runbook.adapters.junit import JUnitError, count
from runbook.checks import build_specs, prod_config
from runbook.checks.base import CheckFailed, PreflightResult, Status
from runbook.checks.config import PreflightConfig
from runbook.checks.runner import CheckSpec, run_checks


def test_a_hanging_check_times_out_without_holding_up_the_others():
    never = threading.Event()
    seen: list[str] = []

    def hang(ctx):
        never.wait()

    def quick(ctx):
        return PreflightResult("quick", Status.OK, "fine")

    t0 = time.monotonic()
    report = run_checks([CheckSpec("hang", hang, timeout_s=0.5),
                         CheckSpec("quick", quick, timeout_s=5)],
                        on_result=lambda r: seen.append(r.name))
    took = time.monotonic() - t0
    assert report.results["hang"].status is Status.FAIL
    assert "timed out after 0.5 s" in report.results["hang"].finding
    assert report.results["quick"].status is Status.OK
    assert seen == ["quick", "hang"], "on_result must fire as each check finishes"
    assert took < 3, f"the runner waited {took:.1f} s for a check with a 0.5 s timeout"
    assert not report.green


def test_checks_run_concurrently():
    barrier = threading.Barrier(3, timeout=5)

    def meet(ctx):
        barrier.wait()  # only passes if all three run at the same time
        return PreflightResult(ctx.name, Status.OK, "met")

    report = run_checks([CheckSpec(n, meet, timeout_s=10) for n in ("a", "b", "c")])
    assert [r.status for r in report.results.values()] == [Status.OK] * 3, report.results


def test_a_crashing_check_is_a_fail_with_the_cause_and_results_are_masked():
    def boom(ctx):
        raise RuntimeError("connect to postgresql://u:hunter2secret@db failed")

    def refuses(ctx):
        raise CheckFailed("bad thing", status=Status.UNKNOWN)

    report = run_checks([CheckSpec("boom", boom), CheckSpec("refuses", refuses)],
                        secrets={"pw": "hunter2secret"})
    r = report.results["boom"]
    assert r.status is Status.FAIL and "RuntimeError" in r.finding
    assert "hunter2secret" not in r.finding
    assert report.results["refuses"].status is Status.UNKNOWN


def test_missing_config_sections_fail_naming_the_section():
    specs = build_specs(PreflightConfig())
    report = run_checks(specs, rc_tag="v2", rc_sha="a" * 40)
    for name, r in report.results.items():
        assert r.status is Status.FAIL, name
        assert f"[preflight.{name}]" in r.finding, r.finding
    with pytest.raises(ValueError, match="unknown check"):
        build_specs(PreflightConfig(), only=["nope"])


@pytest.mark.parametrize("value,ok,why", [
    ("10.0.0.0/8, 192.168.1.0/24", True, ""),
    ("2001:db8::/32", True, ""),
    ("", False, "empty"),
    ("*", False, "trusts everyone"),
    ("0.0.0.0/0", False, "trusts every address"),
    ("::/0", False, "trusts every address"),
    ("proxy.internal", False, "not a network"),
    ("10.0.0.1/8", False, "host bits"),
])
def test_trusted_proxies_strict(value, ok, why):
    status, msg = prod_config.check_trusted_proxies("TRUSTED_PROXIES", value)
    assert (status is Status.OK) == ok, msg
    assert why in msg


def sample_rules():
    """The sample stack's prod_config rules (bot/dev/rehearse/sample.py), by key."""
    import tomllib

    from bot.dev.rehearse.sample import prod_config_rules
    from runbook.checks.sections.prod_config import EnvRule

    rules = tomllib.loads(prod_config_rules("https://stripe.invalid"))["preflight"]
    return {r["key"]: EnvRule.model_validate({k: v for k, v in r.items() if k not in (
        "check", "api_url")}) for r in rules["prod_config"]["rules"]}


def verdict(rules, key, value):
    return prod_config.evaluate(rules[key], value, 1.0)


def test_sample_stripe_rules_live_only_and_never_by_length():
    rules = sample_rules()
    for key, value in (("STRIPE_SECRET_KEY", "sk_live_x1"), ("STRIPE_SECRET_KEY", "rk_live_ab"),
                       ("STRIPE_PUBLISHABLE_KEY", "pk_live_y"),
                       ("STRIPE_WEBHOOK_SECRET", "whsec_abc")):
        assert verdict(rules, key, value)[0] is Status.OK, (key, value)
    status, msg = verdict(rules, "STRIPE_SECRET_KEY", "sk_test_abcdefghijklmnop1234")
    assert status is Status.FAIL and "does not match" in msg and "1234" in msg, msg
    assert "abcdefghijklmnop" not in msg, "a secret shows its last 4 characters at most"
    assert verdict(rules, "STRIPE_PUBLISHABLE_KEY", "pk_test_zzz")[0] is Status.FAIL
    assert verdict(rules, "STRIPE_RESTRICTED_KEY", None)[0] is Status.OK, "optional"
    assert verdict(rules, "STRIPE_WEBHOOK_SECRET", None) == (
        Status.FAIL, ("STRIPE_WEBHOOK_SECRET is not set (expected a Stripe signing secret, "
                     "whsec_...)"))


def test_sample_adyen_rules():
    rules = sample_rules()
    good = {"ADYEN_API_KEY": "anything-at-all",
            "ADYEN_CHECKOUT_URL": "https://abc123-Shop-checkout-live.adyenpayments.com/checkout",
            "ADYEN_CLIENT_KEY": "live_ABCDEFGH", "ADYEN_HMAC_KEY": "A1B2C3D4"}
    for key, value in good.items():
        assert verdict(rules, key, value)[0] is Status.OK, (key, value)
    for key, bad in (("ADYEN_CHECKOUT_URL", "https://checkout-test.adyen.com/v71"),
                     ("ADYEN_CHECKOUT_URL", "https://x-checkout-live.adyenpayments.com.evil.io/"),
                     ("ADYEN_CHECKOUT_URL", "https://u@x-checkout-live.adyenpayments.com/"),
                     ("ADYEN_CLIENT_KEY", "test_ABCDEFGH"), ("ADYEN_HMAC_KEY", "not-hex!"),
                     ("ADYEN_API_KEY", "")):
        status, msg = verdict(rules, key, bad)
        assert status is Status.FAIL and key in msg, (key, bad, msg)


PYTEST_SHAPE = """<testsuites><testsuite name="pytest" tests="99">
<testcase classname="a" name="t1"/><testcase classname="a" name="t2"><skipped/></testcase>
<testcase classname="a" name="t3"><failure/><error/></testcase>
<testcase classname="b" name="t1"><failure message="x"/></testcase>
</testsuite></testsuites>"""
SUREFIRE_SHAPE = """<?xml version="1.0"?><testsuite xmlns="urn:x" tests="3">
<testcase name="t1" classname="C"/><testcase name="t1" classname="C"/>
<testcase name="t2" classname="C"><error type="E"/></testcase></testsuite>"""


def test_junit_counts_every_testcase_once_by_status(tmp_path):
    p = tmp_path / "p.xml"
    p.write_text(PYTEST_SHAPE)
    c = count(p)
    assert (c.passed, c.skipped, c.errors, c.failed, c.total) == (1, 1, 1, 1, 4)
    s = tmp_path / "s.xml"
    s.write_text(SUREFIRE_SHAPE)
    c = count(s)
    assert (c.passed, c.errors, c.total) == (1, 1, 2), "a duplicate (classname, name) counts once"
    bad = tmp_path / "bad.xml"
    bad.write_text("<testsuite><testcase name='x'>")
    with pytest.raises(JUnitError, match="not well-formed"):
        count(bad)
    bomb = tmp_path / "bomb.xml"
    bomb.write_text('<!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]><testsuite>&b;'
                    "</testsuite>")
    with pytest.raises(JUnitError, match="unsafe XML"):
        count(bomb)
    with pytest.raises(JUnitError, match="missing"):
        count(tmp_path / "nope.xml")


def test_restore_figures_compare_counts_and_ledger_md5s():
    from runbook.adapters.pgdump import Figures

    src = Figures({"accounts": 3, "transactions": 10}, {"transactions": "a" * 32})
    assert src.diff(Figures(dict(src.counts), dict(src.md5))) == []
    diffs = src.diff(Figures({"accounts": 3, "transactions": 9}, {"transactions": "b" * 32}))
    assert diffs == ["transactions: 10 rows in the source, 9 restored",
                     "transactions: md5 of the rows differs (aaaaaaaa vs bbbbbbbb)"]
