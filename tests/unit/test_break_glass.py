"""Break-glass: one person may roll back alone only for listed triggers, with a real reason."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from runbook.break_glass import BreakGlassConfig, RollbackSettings, break_glass_allowed
from runbook.model import Trigger

REASON = "attacker has the admin token, rotating and rolling back now"
SECURITY = Trigger(id="security-incident", title="Critical security incident", manual=True)
LEDGER = Trigger(id="ledger-invariant", title="Ledger invariant violation",
                 metric="ledger_violations", op=">", threshold=0)
PAYOUTS = Trigger(id="payout-failure-rate", title="Payout failure rate > 15%",
                  metric="payout_failure_rate", op=">", threshold=0.15)
TRIGGERS = [SECURITY, LEDGER, PAYOUTS]
DEFAULT = BreakGlassConfig()


def test_security_incident_allows_one_person_with_a_reason():
    ok, why = break_glass_allowed(SECURITY, REASON, DEFAULT)
    assert ok, why
    assert "security-incident" in why


def test_a_fired_ledger_watch_allows_it():
    ok, why = break_glass_allowed(LEDGER, REASON, DEFAULT, metrics={"ledger_violations": 3})
    assert ok, why


def test_naming_the_ledger_is_not_enough_when_the_watch_did_not_fire():
    ok, why = break_glass_allowed(LEDGER, REASON, DEFAULT, metrics={"ledger_violations": 0})
    assert not ok and "not over its threshold" in why
    ok, why = break_glass_allowed("ledger-invariant", REASON, DEFAULT, triggers=TRIGGERS)
    assert not ok and "was not measured" in why


def test_payout_failures_need_two_people_by_default():
    ok, why = break_glass_allowed(PAYOUTS, REASON, DEFAULT, metrics={"payout_failure_rate": 0.4})
    assert not ok and "not allowed for payout-failure-rate" in why and "second approver" in why


@pytest.mark.parametrize("reason", [None, "", "   ", "x", "rollback now"])
def test_the_reason_is_mandatory_and_says_something(reason):
    ok, why = break_glass_allowed(SECURITY, reason, DEFAULT)
    assert not ok and "reason" in why


def test_no_trigger_no_break_glass():
    ok, why = break_glass_allowed(None, REASON, DEFAULT)
    assert not ok and "needs the trigger" in why


def test_an_unknown_trigger_id_is_refused_against_the_runbook():
    ok, why = break_glass_allowed("security-drill-2", REASON, DEFAULT, triggers=TRIGGERS)
    assert not ok and "no rollback trigger 'security-drill-2'" in why


def test_a_prefix_matches_whole_words_only():
    cfg = BreakGlassConfig(allowed_triggers=("sec",))
    ok, why = break_glass_allowed(SECURITY, REASON, cfg)
    assert not ok and "not allowed for security-incident" in why


def test_it_can_be_configured_off_or_widened():
    assert not break_glass_allowed(SECURITY, REASON, BreakGlassConfig(enabled=False))[0]
    wide = BreakGlassConfig(allowed_triggers=("security", "ledger", "payout-failure-rate"))
    assert break_glass_allowed(PAYOUTS, REASON, wide, metrics={"payout_failure_rate": 0.2})[0]


def test_config_rejects_typos():
    with pytest.raises(ValidationError):
        RollbackSettings.model_validate({"break_glass": {"allowed_trigger": ["security"]}})
    with pytest.raises(ValidationError):
        BreakGlassConfig(allowed_triggers=("Security ",))
    assert RollbackSettings().break_glass.allowed_triggers == ("security", "ledger")


def test_the_bot_config_reads_the_rollback_table():
    from bot.team_config import GoliveConfig

    cfg = GoliveConfig.model_validate({
        "channels": {"cutover": "C0CUTOVER"}, "approvers": {"users": ["U0AAAAAAA"]},
        "rollback": {"break_glass": {"allowed_triggers": ["security"], "min_reason_chars": 30}}})
    assert cfg.rollback.break_glass.allowed_triggers == ("security",)
    assert not break_glass_allowed(SECURITY, "a short reason of 25 chars", cfg.rollback.break_glass)[0]
