"""The watches' verdict follows Argo Rollouts' analysis semantics and defaults, and the error
budget follows the SRE Workbook's multiwindow burn-rate rule adapted to 30 minutes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from runbook.watches.analysis import (
    AnalysisSpec,
    Measurement,
    WatchState,
    new_state,
    sparkline,
    step,
)
from runbook.watches.burnrate import BurnPolicy, WindowCounts, evaluate

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def run(spec: AnalysisSpec, phases: list[str], **m_kw: object
        ) -> tuple[WatchState, list[list[str]]]:
    """Feed measurements one per second; return the final state and each step's event kinds."""
    state = new_state(spec, T0)
    kinds = []
    for i, ph in enumerate(phases):
        now = T0 + timedelta(seconds=i + 1)
        value = None if ph == "Error" else float(i)
        state, events = step(state, Measurement(ph, now, value=value, threshold=0.15,
                                                summary=f"m{i}", **m_kw), now)  # type: ignore[arg-type]
        kinds.append([e.kind for e in events])
    return state, kinds


def test_first_failure_breaches_with_default_failure_limit_and_fires_the_trigger() -> None:
    state, kinds = run(AnalysisSpec("payouts", rollback_trigger=True),
                       ["Successful", "Failed"])
    assert state.state == "breach" and state.phase == "Failed", state
    assert state.phase_message == "failed (1) > failure_limit (0)"
    assert kinds[1] == ["state_changed", "rollback_trigger"], f"events on the failure: {kinds}"
    assert state.tripped_at == T0 + timedelta(seconds=2)


def test_failure_limit_tolerates_that_many_failures() -> None:
    state, kinds = run(AnalysisSpec("payouts", failure_limit=2, rollback_trigger=True),
                       ["Failed", "Failed", "Successful", "Failed"])
    assert [k for k in kinds if "rollback_trigger" in k] == [kinds[3]], (
        f"the trigger must fire on the 3rd failure only (failed 3 > limit 2): {kinds}")
    assert state.state == "breach"
    assert run(AnalysisSpec("p", failure_limit=2), ["Failed", "Failed"])[0].state == "warn"


def test_fifth_consecutive_error_counts_and_errors_are_not_failures() -> None:
    spec = AnalysisSpec("health")
    state, kinds = run(spec, ["Successful"] + ["Error"] * 4)
    assert state.state == "ok" and state.phase == "Running", (
        "4 consecutive errors are within consecutive_error_limit 4: the watch keeps its state")
    assert state.counts.failed == 0 and state.counts.error == 4
    state, kinds = run(spec, ["Successful"] + ["Error"] * 5)
    assert state.state == "error" and state.phase == "Error", state
    assert state.phase_message == "consecutive errors (5) > consecutive_error_limit (4)"
    assert kinds[-1] == ["state_changed", "measurement_error"], kinds
    assert state.counts.failed == 0, "an error is never counted as a failure"


def test_a_success_resets_the_consecutive_error_count() -> None:
    state, _ = run(AnalysisSpec("h"), ["Error"] * 4 + ["Successful"] + ["Error"] * 4)
    assert state.phase == "Running" and state.counts.consecutive_error == 4
    assert state.counts.error == 8


def test_inconclusive_asks_a_person_and_never_triggers() -> None:
    state, kinds = run(AnalysisSpec("ledger", rollback_trigger=True),
                       ["Successful", "Inconclusive"])
    assert state.state == "inconclusive" and state.phase == "Inconclusive"
    assert "needs_person" in kinds[1] and "rollback_trigger" not in kinds[1], kinds


def test_dry_run_shows_the_breach_but_fires_no_trigger() -> None:
    state, kinds = run(AnalysisSpec("payouts", rollback_trigger=True, dry_run=True),
                       ["Failed"])
    assert state.state == "breach", "a dry-run watch still shows what it sees"
    assert kinds[0] == ["state_changed", "dry_run_trigger"], kinds
    assert state.phase == "Running", "a dry-run metric never changes the outcome"


def test_immediate_measurement_fires_whatever_the_failure_limit() -> None:
    state, kinds = run(AnalysisSpec("error_budget", failure_limit=5), ["Failed"],
                       immediate=True)
    assert state.state == "breach" and "rollback_trigger" in kinds[0], kinds


def test_recovery_returns_to_ok_and_since_tracks_the_last_change() -> None:
    state, kinds = run(AnalysisSpec("health"), ["Successful", "Failed", "Failed", "Successful"])
    assert state.state == "ok" and state.since == T0 + timedelta(seconds=4)
    assert "recovered" in kinds[3], kinds
    assert state.phase == "Failed", "Argo's cumulative verdict remembers that it tripped"
    assert kinds[2] == [], "staying in breach says nothing new"


def test_warn_initial_delay_interval_and_history() -> None:
    spec = AnalysisSpec("webhooks", interval_s=5, initial_delay_s=30, history=3)
    state = new_state(spec, T0)
    assert state.next_due == T0 + timedelta(seconds=30)
    for i in range(4):
        now = T0 + timedelta(seconds=30 + 5 * i)
        state, _ = step(state, Measurement("Successful", now, value=float(i), warn="quiet"), now)
    assert state.state == "warn"
    assert state.next_due == T0 + timedelta(seconds=50)
    assert state.history == (1.0, 2.0, 3.0)
    assert sparkline((0.0, None, 1.0, 2.0, 2.0)) == "▁·▅██"
    assert sparkline((3.0, 3.0)) == "▁▁"


@pytest.mark.parametrize(("long", "short", "page", "immediate"), [
    ((0, 1000), (0, 100), False, False),
    ((300, 1000), (30, 100), True, False),       # 30 % = 15x a 2 % budget on both windows
    ((300, 1000), (1, 100), False, False),       # long burns, short recovered: no page
    ((10, 1000), (30, 100), False, False),       # short spike only: no page
    ((300, 1000), (60, 100), True, True),        # 60 % = 30x over 5 m: immediate trigger
    ((1, 3), (1, 3), False, False),              # 1 error in 3 requests is not a page
])
def test_multiwindow_burn_rate(long: tuple[int, int], short: tuple[int, int], page: bool,
                               immediate: bool) -> None:
    v = evaluate(WindowCounts(*long), WindowCounts(*short), BurnPolicy(budget=0.02))
    assert (v.page, v.immediate) == (page, immediate), v.summary


def test_burn_rate_defaults_follow_the_issue() -> None:
    p = BurnPolicy()
    assert (p.long_window_s, p.short_window_s, p.page_burn, p.immediate_burn) == (
        1800, 300, 14.4, 28.8)
    v = evaluate(WindowCounts(1, 3), WindowCounts(1, 3), p)
    assert "no verdict" in v.summary and not v.enough_data


def test_immediate_during_a_breach_that_did_not_trigger_still_fires_once() -> None:
    state, kinds = run(AnalysisSpec("error_budget"), ["Failed", "Failed", "Failed", "Failed"])
    assert state.state == "breach" and not any("rollback_trigger" in k for k in kinds), (
        "a page-level burn is a breach, not a rollback trigger")
    now = T0 + timedelta(seconds=10)
    fired = []
    for i in range(2):
        state, events = step(state, Measurement("Failed", now, value=30.0, immediate=True), now)
        fired.append([e.kind for e in events])
    assert fired == [["rollback_trigger"], []], f"fires once per breach: {fired}"
