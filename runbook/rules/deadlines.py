"""Deadlines of open approval requests and decision cards, and "overdue" for a running step
(issue 21). Pure: the caller passes the timestamps, what was already sent and ``now``; the
answer is the events due now, each to be sent once (the caller records it as sent in the same
transaction as the message it queues).

An open request or decision card with deadline ``d``, opened at ``t0``:

* at ``t0 + d/2`` a **reminder** in the card's thread to the eligible approvers (once);
* at ``t0 + d``, when a backup group is configured, an **escalation** to it (once); the deadline
  then extends by half the original (``t0 + 1.5 d``), so the backup group has time to answer;
* at the (possibly extended) deadline, **expiry** as a rejection: nothing runs.

When several are due at once (the bot was down), only the last one counts: a reminder or an
escalation nobody can act on any more is not sent, the expiry is. A running step is
**overdue** once, when it passes its expected duration: the median of its earlier runs' durations,
else half its timeout.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from runbook.plan.model import median_duration

__all__ = ["Event", "Open", "due", "expected_duration", "final_deadline", "overdue"]


class Event(StrEnum):
    REMIND = "remind"
    ESCALATE = "escalate"
    EXPIRE = "expire"
    OVERDUE = "overdue"


@dataclass(frozen=True)
class Open:
    """An open approval request or decision card."""

    opened_at: datetime
    deadline: timedelta
    backup_group: str | None = None


def final_deadline(card: Open) -> datetime:
    """When it expires: the deadline, extended by half when a backup group is asked."""
    extra = card.deadline / 2 if card.backup_group else timedelta(0)
    return card.opened_at + card.deadline + extra


def due(card: Open, *, now: datetime, sent: Collection[Event]) -> list[Event]:
    """The events due now and not yet sent (at most one: see the module docstring)."""
    if Event.EXPIRE in sent:
        return []
    if now >= final_deadline(card):
        return [Event.EXPIRE]
    if card.backup_group and now >= card.opened_at + card.deadline:
        return [] if Event.ESCALATE in sent else [Event.ESCALATE]
    if now >= card.opened_at + card.deadline / 2 and Event.REMIND not in sent:
        return [Event.REMIND]
    return []


def expected_duration(earlier: Sequence[float], timeout_s: float) -> float:
    """Seconds a step is expected to take: the median of earlier runs, else half its timeout."""
    median = median_duration(earlier)  # the plan's estimate: the same samples, the same rule
    return median if median is not None else timeout_s / 2


def overdue(*, started_at: datetime, now: datetime, earlier: Sequence[float], timeout_s: float,
            sent: Collection[Event]) -> list[Event]:
    """``[Event.OVERDUE]`` once, when the step has run longer than expected."""
    if Event.OVERDUE in sent:
        return []
    late = now - started_at > timedelta(seconds=expected_duration(earlier, timeout_s))
    return [Event.OVERDUE] if late else []
