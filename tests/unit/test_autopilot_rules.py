"""runbook/rules/autopilot.py, deadlines.py, guided_failure.py on the shipped runbook."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import runbook.steps.catalog  # noqa: F401  (the registry complete)
from runbook.model import default_runbook_path, load_runbook
from runbook.rules import deadlines as dl
from runbook.rules import guided_failure as gf
from runbook.rules.autopilot import StopReason, fresh_states, next_moves
from runbook.steps.base import REGISTRY

RB = load_runbook(default_runbook_path(), known_kinds=REGISTRY.keys())
T0 = datetime(2026, 12, 8, 2, 0, tzinfo=UTC)
DONE = "succeeded"


def upto(*ids: str) -> dict[str, str]:
    return dict.fromkeys(ids, DONE)


def test_after_a_green_preflight_it_asks_approval_for_maintenance_only():
    m = next_moves(RB, upto("preflight"))
    assert (m.request, m.ask_approval, m.stop) == ((), ("maintenance-on",), None)


def test_before_the_preflight_it_requests_the_preflight():
    m = next_moves(RB, {})
    assert m.request == ("preflight",) and m.ask_approval == ()


def test_a_pending_approval_is_waited_for_never_asked_twice():
    m = next_moves(RB, {"preflight": DONE, "maintenance-on": "awaiting_approval"})
    assert (m.request, m.ask_approval, m.waiting, m.stop) == ((), (), ("maintenance-on",), None)
    assert m.waits_for == "maintenance-on"


def test_ungated_steps_follow_by_themselves_and_the_manual_one_never():
    m = next_moves(RB, upto("preflight", "maintenance-on", "deploy"))
    assert m.request == ("migrate",) and "maintenance-off" not in m.ask_approval
    assert next_moves(RB, upto("preflight", "maintenance-on", "deploy", "migrate")
                      ).request == ("health",)
    m = next_moves(RB, upto("preflight", "maintenance-on", "deploy", "migrate", "health", "smoke"))
    assert m.ask_approval == ("traffic-open",) and m.request == ()


def test_it_stops_at_the_canary_and_never_requests_it_or_the_watches():
    states = upto("preflight", "maintenance-on", "deploy", "migrate", "health", "smoke",
                  "traffic-open")
    m = next_moves(RB, {**states, "webhook-watch": "running"})
    assert m.stop is not None and m.stop.reason is StopReason.CANARY
    assert m.stop.step_id == "canary" and "`/golive canary`" in m.stop.next
    assert m.request == () and m.ask_approval == ()


def test_after_the_canary_it_stops_before_finish():
    states = upto(*[s.id for s in RB.cutover_steps() if not s.manual])
    m = next_moves(RB, states)
    assert m.stop is not None and m.stop.reason is StopReason.FINISH
    assert "`/golive finish`" in m.stop.next


@pytest.mark.parametrize("state,word", [("failed", "failed"),
                                        ("interrupted", "was interrupted")])
def test_a_failure_or_interruption_stops_it_naming_the_step(state, word):
    m = next_moves(RB, {**upto("preflight", "maintenance-on", "deploy"), "migrate": state})
    assert m.stop is not None and m.stop.reason is StopReason.FAILURE
    assert m.stop.step_id == "migrate" and word in m.stop.why and m.request == ()


def test_a_rejection_after_go_stops_it_one_before_go_is_asked_again():
    rows = [("preflight", DONE, T0), ("maintenance-on", "cancelled", T0)]
    assert next_moves(RB, fresh_states(rows, since=T0 - timedelta(minutes=1))
                      ).stop.reason is StopReason.REJECTED
    again = next_moves(RB, fresh_states(rows, since=T0 + timedelta(minutes=1)))
    assert again.ask_approval == ("maintenance-on",) and again.stop is None


def test_the_preflight_gate_stops_it_before_a_gated_step_with_the_gates_words():
    m = next_moves(RB, upto("preflight"), preflight_block="the preflight is 3 h old.")
    assert m.stop is not None and m.stop.reason is StopReason.PREFLIGHT
    assert "the preflight is 3 h old." in m.stop.why and m.ask_approval == ()


def test_a_rollback_stops_it():
    m = next_moves(RB, {**upto("preflight", "maintenance-on"), "rb-maintenance-on": "running"})
    assert m.stop is not None and m.stop.reason is StopReason.ROLLBACK


def test_a_kind_not_built_is_never_requested():
    kinds = set(REGISTRY) - {"migrate"}
    m = next_moves(RB, upto("preflight", "maintenance-on", "deploy"), available=kinds)
    assert m.request == () and m.blocked == ("migrate",) and m.stop is not None


# ------------------------------------------------------------------ deadlines

CARD = dl.Open(opened_at=T0, deadline=timedelta(minutes=20))
BACKED = dl.Open(opened_at=T0, deadline=timedelta(minutes=20), backup_group="leads")


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_a_reminder_at_half_time_once():
    assert dl.due(CARD, now=at(9.9), sent=()) == []
    assert dl.due(CARD, now=at(10), sent=()) == [dl.Event.REMIND]
    assert dl.due(CARD, now=at(15), sent=[dl.Event.REMIND]) == []


def test_without_a_backup_group_it_expires_at_the_deadline():
    assert dl.due(CARD, now=at(20), sent=[dl.Event.REMIND]) == [dl.Event.EXPIRE]
    assert dl.due(CARD, now=at(25), sent=[dl.Event.REMIND, dl.Event.EXPIRE]) == []


def test_with_a_backup_group_it_escalates_once_and_expires_half_a_deadline_later():
    assert dl.due(BACKED, now=at(20), sent=[dl.Event.REMIND]) == [dl.Event.ESCALATE]
    sent = [dl.Event.REMIND, dl.Event.ESCALATE]
    assert dl.due(BACKED, now=at(29.9), sent=sent) == []
    assert dl.final_deadline(BACKED) == at(30)
    assert dl.due(BACKED, now=at(30), sent=sent) == [dl.Event.EXPIRE]


def test_after_a_long_outage_only_the_expiry_is_sent():
    assert dl.due(BACKED, now=at(45), sent=()) == [dl.Event.EXPIRE]


def test_overdue_once_past_the_median_else_half_the_timeout():
    assert dl.expected_duration([10, 30, 20], 900) == 20
    assert dl.expected_duration([], 900) == 450
    args = {"started_at": T0, "earlier": [60.0, 120.0, 90.0], "timeout_s": 900}
    assert dl.overdue(now=T0 + timedelta(seconds=90), sent=(), **args) == []
    assert dl.overdue(now=T0 + timedelta(seconds=91), sent=(), **args) == [dl.Event.OVERDUE]
    assert dl.overdue(now=T0 + timedelta(seconds=500), sent=[dl.Event.OVERDUE], **args) == []


# ------------------------------------------------------------------ guided failure


def names(step_id: str, state: str = "failed", **kw) -> list[str]:
    return [c.option.value for c in gf.options(RB.step(step_id), state, **kw)]


def test_retry_only_for_idempotent_steps():
    assert names("health") == ["retry", "skip", "rollback", "hold", "abort"]
    assert names("migrate") == ["skip", "rollback", "hold", "abort"]
    assert names("canary", "interrupted")[0] == "skip"
    assert names("health", "succeeded") == []
    assert "rollback" not in names("health", rollback_started=True)


def test_a_gated_retry_says_it_asks_again():
    assert gf.options(RB.step("deploy"), "failed")[0].label == "Retry (asks for approval again)"


def test_the_first_to_take_it_owns_it_and_only_the_owners_choice_counts():
    assert gf.take(None, "U_ALICE") == ("U_ALICE", None)
    owner, refusal = gf.take("U_ALICE", "U_BOB")
    assert owner == "U_ALICE" and "<@U_ALICE> owns this decision" in refusal
    step = RB.step("migrate")
    assert "Take it" in gf.check_choice(owner=None, user="U_BOB", option=gf.Option.HOLD,
                                        step=step, state="failed")
    assert "only their choice counts" in gf.check_choice(
        owner="U_ALICE", user="U_BOB", option=gf.Option.HOLD, step=step, state="failed")
    assert gf.check_choice(owner="U_ALICE", user="U_ALICE", option=gf.Option.HOLD, step=step,
                           state="failed") is None
    assert "not idempotent" in gf.check_choice(owner="U_ALICE", user="U_ALICE",
                                               option=gf.Option.RETRY, step=step,
                                               state="failed")


def test_skip_needs_a_reason_and_a_second_person():
    assert "reason" in gf.check_skip_approval(owner="U_A", approver="U_B", reason="meh")
    assert "second person" in gf.check_skip_approval(owner="U_A", approver="U_A",
                                                     reason="done by hand with psql")
    assert gf.check_skip_approval(owner="U_A", approver="U_B",
                                  reason="done by hand with psql") is None


def test_abort_needs_the_typed_tag_and_a_reason():
    assert "`v2.3.1`" in gf.check_abort(typed="v2.3", rc_tag="v2.3.1", reason="x" * 20)
    assert "reason" in gf.check_abort(typed="v2.3.1", rc_tag="v2.3.1", reason="")
    assert gf.check_abort(typed=" v2.3.1 ", rc_tag="v2.3.1", reason="ledger is off by 10") is None
    assert "type `abort`" in gf.check_abort(typed="v1", rc_tag=None, reason="x" * 20)
