"""The canary against the sample stack: paybox runs on the host over a throwaway, migrated
ledger database; money moves through its own /api/deposits and /api/payouts endpoints and its
webhook endpoint writes the ``Signature Verified`` lines the evidence counts."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from PIL import Image

from runbook.canary import machine
from runbook.canary.chart import render_chart
from runbook.canary.config import CanaryConfig, Role
from runbook.canary.evidence import WebhookTap, error_budget_evidence, sample_from
from runbook.canary.ledger import LedgerVerifier, database_label, ledger_check
from runbook.canary.report import load_template, render_report, summary_lines
from runbook.rules.approvals import Actor
from runbook.watches.analysis import AnalysisSpec
from runbook.watches.config import ErrorBudgetWatchConfig
from runbook.watches.logs import LineCounter, LogTail, status_classifier
from runbook.watches.sources import LogCounts
from runbook.watches.watches import HealthWatch
from tests.canary.conftest import PayboxApp
from tests.support.paybox_target import paybox_canary_queries
from tests.watches.conftest import wait_until

ROOT = Path(__file__).resolve().parents[2]
ENG, FIN, OPENER = "U0ENG0001", "U0FIN0001", "U0OPENER1"
ROLES = {"engineering": Role(users=[ENG, OPENER]), "finance": Role(users=[FIN])}
MEMBERS = {"engineering": [ENG, OPENER], "finance": [FIN]}


def now() -> datetime:
    return datetime.now(UTC)


def config(**kw: Any) -> CanaryConfig:
    base: dict[str, Any] = {"account": f"canary-{uuid.uuid4().hex[:8]}", "roles": ROLES,
                            "queries": paybox_canary_queries()}
    return CanaryConfig(**{**base, **kw})


def open_canary(app: PayboxApp, cfg: CanaryConfig) -> tuple[machine.CanaryState, LedgerVerifier]:
    verifier = LedgerVerifier(app.database_url, cfg)
    st = machine.open_canary(cfg, opened_by=OPENER, now=now(), run_id=7,
                             traffic_opened_at=now(), versions={"app": app.version},
                             opening_balances=verifier.balances())
    return st, verifier


def report_and_verify(st: machine.CanaryState, verifier: LedgerVerifier, item: str, ref: str,
                      amount: str | None = "10.00", by: str = OPENER) -> machine.CanaryState:
    step = machine.report(st, item, ref, amount, by=by, now=now())
    assert step.verify is not None, f"{item} {ref} was not accepted: {step.reply}"
    return machine.record(step.state, item, verifier.verify(step.verify), now=now(), by=by).state


def start(tail: LogTail) -> None:
    tail.start()
    wait_until(lambda: tail.connected, 10, "the log tail to follow the app's log")


def test_happy_path_go_with_report_chart_and_measured_values(paybox_app: PayboxApp,
                                                             app_tail: LogTail) -> None:
    tap = WebhookTap.on(app_tail)
    access = app_tail.subscribe(LineCounter(status_classifier(
        ErrorBudgetWatchConfig().status_pattern)))
    start(app_tail)
    cfg = config()
    st, verifier = open_canary(paybox_app, cfg)
    assert st.opening_balances is not None and not st.opening_balances.exists
    health = HealthWatch(AnalysisSpec("health"), paybox_app.url + "/api/health",
                         expect={"status": "ok"}, latency_warn_ms=1000)
    st = machine.add_sample(st, sample_from(health.measure(now()), error_rate=0.0))

    dep_ref, pay_ref = f"dep-{uuid.uuid4().hex[:8]}", f"pay-{uuid.uuid4().hex[:8]}"
    paybox_app.deposit(cfg.account, 1000, dep_ref)
    paybox_app.webhook("deposit.succeeded", dep_ref)
    st = report_and_verify(st, verifier, "deposit", dep_ref)
    assert st.items["deposit"].status == "ok", st.items["deposit"].summary

    paybox_app.payout(cfg.account, 1000, pay_ref)
    paybox_app.webhook("payout.settled", pay_ref)
    st = report_and_verify(st, verifier, "withdrawal", pay_ref, amount="$10")
    assert st.items["withdrawal"].status == "ok", st.items["withdrawal"].summary
    st = machine.add_sample(st, sample_from(health.measure(now()), error_rate=0.0))

    st = machine.record(st, "ledger", ledger_check(verifier, st.items["withdrawal"].details),
                        now=now()).state
    assert st.items["ledger"].status == "ok", st.items["ledger"].summary
    wait_until(lambda: len(tap.lines()) >= 2, 10, "both webhooks' lines in the log tail")
    st = machine.record(st, "webhooks", tap.evidence([dep_ref, pay_ref]), now=now()).state
    assert st.items["webhooks"].status == "ok", st.items["webhooks"].summary
    t = now()
    eb = error_budget_evidence(LogCounts(app_tail, access), since=st.opened_at, now=t,
                               budget=0.02)
    st = machine.record(st, "error_budget", eb, now=t).state
    assert st.items["error_budget"].status == "ok", eb.summary
    assert eb.details["requests"] >= 4 and eb.details["errors_5xx"] == 0, eb.details

    policy = machine.signoff_policy(MEMBERS)
    first = machine.sign(st, Actor(ENG), policy, now=now(), note="ledger looks right")
    assert first.state.outcome == "open" and "1 finance" in first.reply, first.reply
    done = machine.sign(first.state, Actor(FIN), policy, now=now())
    st = done.state
    assert st.outcome == "GO", done.reply
    assert done.reply.startswith("*GO*") and f"<@{ENG}>" in done.reply and f"<@{FIN}>" in \
        done.reply, done.reply

    png = render_chart(st.samples)
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "the chart is not a PNG"
    with Image.open(io.BytesIO(png)) as img:
        assert img.format == "PNG" and img.size[0] >= 400, (img.format, img.size)

    text = render_report(st, load_template(cfg.template_file()), chart="canary.png",
                         database=database_label(paybox_app.database_url),
                         names={ENG: "erin", FIN: "finn"})
    # the measured values, as the ledger and the log had them
    for want in (dep_ref, pay_ref, "10.00 USD", "0.00 USD → 10.00 USD",
                 "10.00 USD → 0.00 USD", str(st.items["deposit"].details["transaction_id"]),
                 "`v2`", "@erin", "@finn", "ledger looks right", "1 Signature Verified",
                 f"{eb.details['requests']} requests", "0.000%", "canary.png", "# Canary report: GO",
                 cfg.account):
        assert want in text, f"report lacks {want!r}:\n{text}"
    team = render_report(st, load_template(ROOT / "examples/paybox/docs/ops/"
                                           "canary_report_template.md"))
    assert dep_ref in team and "Paybox go-live canary: GO" in team, team
    lines = summary_lines(st)
    assert lines[0].startswith("Canary GO") and len("\n".join(lines)) < 3000, lines


def test_wrong_withdrawal_amount_fails_with_the_numbers(paybox_app: PayboxApp) -> None:
    cfg = config()
    paybox_app.deposit(cfg.account, 5000, f"seed-{uuid.uuid4().hex[:8]}")  # earlier balance
    st, verifier = open_canary(paybox_app, cfg)
    dep_ref, pay_ref = f"dep-{uuid.uuid4().hex[:8]}", f"pay-{uuid.uuid4().hex[:8]}"
    paybox_app.deposit(cfg.account, 1000, dep_ref)
    st = report_and_verify(st, verifier, "deposit", dep_ref)
    assert st.items["deposit"].status == "ok", st.items["deposit"].summary
    paybox_app.payout(cfg.account, 1200, pay_ref)  # someone withdrew $12, not $10
    st = report_and_verify(st, verifier, "withdrawal", pay_ref, amount=None)
    w = st.items["withdrawal"]
    assert w.status == "failed", f"a $12 withdrawal passed: {w.summary}"
    for want in ("is 12.00 USD; the canary payout is 10.00 USD",
                 "available fell by 12.00 USD (60.00 USD → 48.00 USD); expected 10.00 USD"):
        assert want in w.summary, f"the failure does not show {want!r}: {w.summary}"
    assert w.details["before"]["available"] == 6000 and w.details["after"]["available"] == 4800
    retry = machine.report(st, "withdrawal", pay_ref, "12", by=OPENER, now=now())
    assert retry.verify is not None, f"a failed withdrawal cannot be reported again: {retry.reply}"


def test_wrong_account_and_missing_fee_are_failures(paybox_app: PayboxApp) -> None:
    cfg = config(fee=Decimal("0.50"))
    st, verifier = open_canary(paybox_app, cfg)
    other = "someone-else-" + uuid.uuid4().hex[:6]
    ref = f"dep-{uuid.uuid4().hex[:8]}"
    paybox_app.deposit(other, 1000, ref)
    st = report_and_verify(st, verifier, "deposit", ref)
    d = st.items["deposit"]
    assert d.status == "failed", d.summary
    assert f"is on account `{other}`, not the canary's `{cfg.account}`" in d.summary, d.summary
    ok_ref, pay_ref = f"dep-{uuid.uuid4().hex[:8]}", f"pay-{uuid.uuid4().hex[:8]}"
    paybox_app.deposit(cfg.account, 1000, ok_ref)
    st = report_and_verify(st, verifier, "deposit", ok_ref)
    assert st.items["deposit"].status == "ok", st.items["deposit"].summary
    paybox_app.payout(cfg.account, 1000, pay_ref)  # paybox charges no fee; the config says 0.50
    st = report_and_verify(st, verifier, "withdrawal", pay_ref)
    w = st.items["withdrawal"]
    assert w.status == "failed", w.summary
    assert ("available fell by 10.00 USD (10.00 USD → 0.00 USD); expected 10.00 USD + fee "
            "0.50 USD = 10.50 USD") in w.summary, w.summary


def test_unknown_reference_is_a_failure_and_retryable(paybox_app: PayboxApp) -> None:
    cfg = config()
    st, verifier = open_canary(paybox_app, cfg)
    st = report_and_verify(st, verifier, "deposit", "dep-does-not-exist")
    d = st.items["deposit"]
    assert d.status == "failed", d.summary
    assert "unknown reference `dep-does-not-exist`" in d.summary, d.summary
    ref = f"dep-{uuid.uuid4().hex[:8]}"
    paybox_app.deposit(cfg.account, 1000, ref)
    st = report_and_verify(st, verifier, "deposit", ref)
    assert st.items["deposit"].status == "ok", f"retry failed: {st.items['deposit'].summary}"
    assert st.items["deposit"].attempts == 2


def test_non_numeric_amount_and_bad_reference_leave_the_item_open(paybox_app: PayboxApp
                                                                  ) -> None:
    cfg = config()
    st, _ = open_canary(paybox_app, cfg)
    for ref, amount, want in (("dep-1", "ten dollars", "`ten dollars` is not an amount"),
                              ("", "10", "The reference is empty"),
                              ("dep 1; drop", "10", "does not look like a transaction reference"),
                              ("dep-1", "10 EUR", "The canary is in USD, not EUR")):
        step = machine.report(st, "deposit", ref, amount, by=OPENER, now=now())
        assert not step.changed and step.verify is None, f"{ref!r}/{amount!r} was accepted"
        assert want in step.reply and "try again" in step.reply, step.reply
        assert step.state.items["deposit"].status == "pending", step.state.items["deposit"]


def test_resume_from_serialised_state_mid_verification(paybox_app: PayboxApp) -> None:
    cfg = config()
    st, verifier = open_canary(paybox_app, cfg)
    ref = f"dep-{uuid.uuid4().hex[:8]}"
    paybox_app.deposit(cfg.account, 1000, ref)
    step = machine.report(st, "deposit", ref, "10.00", by=OPENER, now=now())
    saved = step.state.to_json()  # the bot dies before the verification runs
    restored = machine.CanaryState.from_json(saved)
    assert restored == step.state, "the state did not survive its JSON round trip"
    todo = machine.pending_checks(restored)
    assert [v.reference for v in todo] == [ref], f"the interrupted check was lost: {todo}"
    st2 = machine.record(restored, "deposit", verifier.verify(todo[0]), now=now()).state
    assert st2.items["deposit"].status == "ok", st2.items["deposit"].summary
    again = machine.CanaryState.from_json(st2.to_json())
    assert again.items["deposit"].details["after"]["available"] == 1000
    assert machine.pending_checks(again) == []
