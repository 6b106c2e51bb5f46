"""The canary's sign-off rules, input parsing, template check and masking: the pure parts
(the ledger checks against paybox are in test_canary_paybox.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.settings import parse_config
from runbook.canary import machine
from runbook.canary.config import CanaryConfig, Role
from runbook.canary.evidence import error_budget_evidence, webhook_evidence
from runbook.canary.inputs import InputError, parse_amount, parse_command
from runbook.canary.report import check_template, load_template, render_report, summary_lines
from runbook.rules.approvals import Actor, Policy, Refusal
from runbook.watches.burnrate import WindowCounts

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2025, 3, 1, 14, 0, tzinfo=UTC)
OPENER, ENG, ENG2, FIN, NOBODY = "U0OPENER1", "U0ENG0001", "U0ENG0002", "U0FIN0001", "U0NOBODY1"
ROLES = {"engineering": Role(users=[OPENER, ENG, ENG2]), "finance": Role(users=[FIN])}
POLICY = machine.signoff_policy({"engineering": [OPENER, ENG, ENG2], "finance": [FIN]})


def checked(cfg: CanaryConfig) -> machine.CanaryState:
    """A canary whose five checks are all ✅, waiting for its sign-off."""
    st = machine.open_canary(cfg, opened_by=OPENER, now=T0)
    for i, key in enumerate(machine.CHECKS):
        st = machine.record(st, key, machine.CheckResult(True, f"{key} fine"),
                            now=T0 + timedelta(minutes=i)).state
    return st


def test_a_non_signer_is_refused_and_nothing_changes() -> None:
    st = checked(CanaryConfig(account="canary", roles=ROLES))
    step = machine.sign(st, Actor(NOBODY), POLICY, now=T0)
    assert not step.changed and step.refusal is Refusal.NOT_AN_APPROVER, step
    assert step.reply == ("You are not a signer for this canary; sign-off is for `engineering` "
                          "or `finance`."), step.reply
    assert step.state == st
    guest = machine.sign(st, Actor(FIN, is_guest=True), POLICY, now=T0)
    assert guest.refusal is Refusal.GUEST_ACCOUNT and not guest.changed, guest.reply


def test_two_distinct_signers_with_roles_make_it_go_and_nobody_signs_twice() -> None:
    st = checked(CanaryConfig(account="canary", roles=ROLES))
    one = machine.sign(st, Actor(ENG), POLICY, now=T0, note="ledger ok")
    twice = machine.sign(one.state, Actor(ENG), POLICY, now=T0)
    assert twice.refusal is Refusal.ALREADY_VOTED and not twice.changed, twice.reply
    same_role = machine.sign(one.state, Actor(ENG2), POLICY, now=T0)
    assert same_role.state.outcome == "open", "two engineers made a GO without finance"
    assert "still needed: 1 finance" in same_role.reply, same_role.reply
    go = machine.sign(one.state, Actor(FIN), POLICY, now=T0 + timedelta(seconds=30))
    assert go.state.outcome == "GO" and go.state.decided_at == T0 + timedelta(seconds=30)
    assert go.reply == (f"*GO* — signed by <@{ENG}> (engineering) at 2025-03-01 14:00:00 UTC, "
                        f"<@{FIN}> (finance) at 2025-03-01 14:00:30 UTC."), go.reply
    assert go.state.items["signoff"].status == "ok"
    late = machine.sign(go.state, Actor(ENG2), POLICY, now=T0)
    assert not late.changed and "already decided: GO" in late.reply, late.reply


def test_the_opener_cannot_be_the_only_signer() -> None:
    cfg = CanaryConfig(account="canary", required_signoffs=1)  # no roles: the approvers sign
    approvers = Policy(approvers=frozenset({OPENER, ENG}))
    st = checked(cfg)
    alone = machine.sign(st, Actor(OPENER), approvers, now=T0)
    assert alone.changed and alone.state.outcome == "open", "the opener alone made a GO"
    assert "a signer other than the opener" in alone.reply, alone.reply
    go = machine.sign(alone.state, Actor(ENG), approvers, now=T0)
    assert go.state.outcome == "GO", go.reply


def test_sign_off_waits_for_the_checks_but_reject_does_not() -> None:
    st = machine.open_canary(CanaryConfig(account="canary", roles=ROLES), opened_by=OPENER, now=T0)
    early = machine.sign(st, Actor(ENG), POLICY, now=T0)
    assert not early.changed and "still open: Deposit, Withdraw" in early.reply, early.reply
    no = machine.sign(st, Actor(FIN), POLICY, now=T0, decision="reject", note="wrong payout")
    assert no.state.outcome == "NO-GO" and no.offer_rollback and no.state.rollback_offered
    assert no.reply.startswith(f"*NO-GO* — rejected by <@{FIN}>") and "wrong payout" in no.reply
    assert "Rollback is offered" in no.reply, no.reply
    assert no.state.items["signoff"].status == "failed"


def test_reject_after_a_signature_is_no_go() -> None:
    st = checked(CanaryConfig(account="canary", roles=ROLES))
    one = machine.sign(st, Actor(ENG), POLICY, now=T0)
    no = machine.sign(one.state, Actor(FIN), POLICY, now=T0, decision="reject")
    assert no.state.outcome == "NO-GO" and no.offer_rollback, no.reply
    text = render_report(no.state, load_template(CanaryConfig().template_file()))
    assert "# Canary report: NO-GO" in text and "rollback was offered" in text, text
    outsider = machine.sign(st, Actor(NOBODY), POLICY, now=T0, decision="reject")
    assert outsider.refusal is Refusal.NOT_AN_APPROVER and outsider.state.outcome == "open"


@pytest.mark.parametrize(("text", "cents"), [("10", 1000), ("10.5", 1050), ("$10.00", 1000),
                                             ("1,000.25 USD", 100025)])
def test_amounts_parse(text: str, cents: int) -> None:
    assert parse_amount(text, currency="USD") == cents


@pytest.mark.parametrize("text", ["ten", "10.001", "-5", "0", "10 EUR", "1e3"])
def test_bad_amounts_are_refused(text: str) -> None:
    with pytest.raises(InputError):
        parse_amount(text, currency="USD")


def test_thread_commands_parse() -> None:
    c = parse_command("withdraw pay-42 10.00")
    assert (c.kind, c.reference, c.amount) == ("withdrawal", "pay-42", "10.00")
    assert parse_command("reject ledger is off").note == "ledger is off"
    with pytest.raises(InputError, match="I don't know `frobnicate`"):
        parse_command("frobnicate x")


def test_unknown_placeholder_is_found_up_front(tmp_path: Path) -> None:
    for path in (CanaryConfig().template_file(),
                 ROOT / "examples/paybox/docs/ops/canary_report_template.md"):
        assert check_template(load_template(path), name=path.name) == [], path
    (tmp_path / "ops").mkdir()
    (tmp_path / "ops" / "report.md").write_text(
        "# {{ canary.outcome }}\n{% if canary.outcome == 'NO-GO' %}{{ signoff.rejected_by }}"
        "{% endif %}\n{{ deposit.refrence }}\n")
    cfg = CanaryConfig(template=Path("ops/report.md"))
    problems = check_template(load_template(cfg.template_file(tmp_path)), name="report.md")
    assert any("refrence" in p or "rejected_by" in p for p in problems), problems
    top = check_template("{{ ledger_balance }} {{ deposit.reference }}", name="t.md")
    assert top and "unknown placeholder(s) ledger_balance" in top[0], top
    assert check_template("{% for %}", name="t.md")[0].startswith("t.md line 1:")


def test_the_example_config_points_at_the_team_template() -> None:
    env = {"PAYBOX_DATABASE_URL": "postgresql://u:p@db/paybox", "PAYBOX_OPS_TOKEN": "t0k",
           "PAYBOX_ADMIN_PASSWORD": "pw"}
    cfg = parse_config((ROOT / "golive.example.toml").read_text(), environ=env)
    path = cfg.canary.template_file(ROOT)
    assert path == ROOT / "examples/paybox/docs/ops/canary_report_template.md", path
    assert check_template(load_template(path)) == []
    assert cfg.canary.cents(cfg.canary.deposit_amount) == 1000
    assert set(cfg.canary.roles) == {"engineering", "finance"}


def test_no_secret_reaches_the_report_or_the_summary() -> None:
    secret = "S3cret-canary-pw-8d1e"
    toml = (ROOT / "golive.example.toml").read_text().replace(
        "[canary]\n", f'[canary]\ndatabase_url = "postgresql://canary:{secret}@db:5432/paybox"\n',
        1)
    cfg = parse_config(toml, environ={"PAYBOX_DATABASE_URL": "postgresql://u@db/paybox",
                                      "PAYBOX_OPS_TOKEN": "ops-token-7f3a9c",
                                      "PAYBOX_ADMIN_PASSWORD": "admin-pw-0e2b"})
    secrets = cfg.secret_values()
    assert any(secret in v for v in secrets.values()), "the canary's database URL is not a known secret"
    st = checked(cfg.canary)
    st = machine.sign(st, Actor(ENG), machine.signoff_policy({"engineering": [ENG],
                                                              "finance": [FIN]}),
                      now=T0, note=f"db pw is {secret}, ops token ops-token-7f3a9c",
                      ).state
    db_url = cfg.canary.database_url.get_secret_value()  # type: ignore[union-attr]
    text = render_report(st, load_template(cfg.canary.template_file(ROOT)), secrets=secrets,
                         database=db_url)
    text2 = render_report(st, load_template(CanaryConfig().template_file()), secrets=secrets,
                          database=db_url)
    summary = "\n".join(summary_lines(st, secrets=secrets))
    for out in (text, text2, summary):
        assert secret not in out and "ops-token-7f3a9c" not in out, out
    assert "db pw is ****" in text2, text2


def test_webhook_evidence_names_each_reference_and_fails_on_bad_signatures() -> None:
    lines = ["2025 paybox webhook psp event=deposit.succeeded/dep-1 Signature Verified",
             "2025 paybox webhook psp event=payout.settled/pay-17 Signature Verified",
             "2025 paybox webhook psp event=payout.settled/pay-1 Signature Invalid"]
    res = webhook_evidence(lines, ["dep-1", "pay-1"])
    assert not res.ok and "1 webhook(s) for the canary failed signature" in res.summary, res
    assert res.details["references"]["pay-1"] == {"verified": 0, "failed": 1}, res.details
    ok = webhook_evidence(lines[:2], ["dep-1", "pay-17"])
    assert ok.ok and ok.summary.startswith("2 Signature Verified"), ok.summary


class Counts:
    description = "recorded counts"

    def __init__(self, errors: float, total: float) -> None:
        self.c = WindowCounts(errors, total)

    def counts(self, window_s: float, now: float) -> WindowCounts:
        return self.c


def test_error_budget_evidence_shows_the_numbers() -> None:
    over = error_budget_evidence(Counts(5, 100), since=T0, now=T0 + timedelta(minutes=10),
                                 budget=0.02)
    assert not over.ok, over.summary
    assert over.summary.startswith("5 5xx of 100 requests since traffic opened (5.00%, budget "
                                   "2.00%): 250% of the budget used"), over.summary
    fine = error_budget_evidence(Counts(1, 100), since=T0, now=T0 + timedelta(minutes=10),
                                 budget=0.02)
    assert fine.ok and fine.details["consumption"] == 0.5, fine
