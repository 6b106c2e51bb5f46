"""The approval card's expiry line, rendered at send time with an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.runtime import load_step_catalog
from bot.slack.blocks import step_card
from runbook.model import default_runbook_path, load_runbook
from runbook.steps.base import REGISTRY

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


def card_text(requested: datetime, rendered: datetime, expiry: timedelta) -> str:
    load_step_catalog()
    rb = load_runbook(default_runbook_path(), known_kinds=REGISTRY.keys(),
                      approver_groups={"approvers"})
    step = rb.step("maintenance-on")
    approval = {"id": 7, "requester": "U_ALICE", "required": 1, "groups": ["approvers"],
                "status": "pending", "expires_at": requested + expiry, "params": {}}
    exe = {"state": "awaiting_approval", "run_id": 1, "attempt": 1,
           "params": {"args": {"state": "on"}}}
    _, blocks = step_card(step=step, exe=exe, approval=approval, votes=[], progress=None,
                             now=rendered)
    return str(blocks)


def test_a_fresh_15_minute_request_says_15_min():
    # The outbox renders the card a moment after the request was committed.
    shown = card_text(T0, T0 + timedelta(milliseconds=300), timedelta(minutes=15))
    assert "Expires in 15 min" in shown, "a fresh 15-minute request must not say 14"


def test_the_expiry_counts_down_and_never_goes_negative():
    assert "Expires in 10 min" in card_text(T0, T0 + timedelta(minutes=5), timedelta(minutes=15))
    assert "Expires in 1 min" in card_text(T0, T0 + timedelta(minutes=14, seconds=30),
                                           timedelta(minutes=15))
    assert "Expires in 0 min" in card_text(T0, T0 + timedelta(minutes=16), timedelta(minutes=15))
