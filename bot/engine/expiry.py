"""When an approval request or a decision card runs out (issue 21): the step's ``deadline``,
else ``[approvers]``; an approval's expiry is extended by half when a backup group is asked at
the deadline (``runbook.rules.deadlines.final_deadline``). One function per derived value, used
by the request (its ``expires_at``), the deadline watch (its reminders) and the cards."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from runbook.rules import deadlines as rule


def approval_open(step: Any, *, opened_at: datetime, config: Any,
                  default: timedelta) -> rule.Open:
    """An approval request of ``step`` opened at ``opened_at`` (``config``: GoliveConfig, or
    None: ``default`` and no backup group)."""
    if config is None:
        return rule.Open(opened_at=opened_at, deadline=default)
    cfg = config.approvers
    seconds = getattr(step, "deadline_s", None) or cfg.deadline * 60
    return rule.Open(opened_at=opened_at, deadline=timedelta(seconds=seconds),
                     backup_group=cfg.backup_group)


def approval_expires_at(step: Any, *, now: datetime, config: Any,
                        default: timedelta) -> datetime:
    """The ``expires_at`` of a request made now: the deadline, plus the backup group's half."""
    return rule.final_deadline(approval_open(step, opened_at=now, config=config,
                                             default=default))


def decision_open(step: Any, *, opened_at: datetime, config: Any) -> rule.Open:
    """A decision card opened when the attempt ended: the step's deadline, else
    ``[approvers] decision_deadline_minutes`` (30 without a config). No backup group: a
    decision card is not an approval; at its end the operators are paged, nothing runs."""
    minutes = config.approvers.decision_deadline_minutes if config is not None else 30
    seconds = getattr(step, "deadline_s", None) or minutes * 60
    return rule.Open(opened_at=opened_at, deadline=timedelta(seconds=seconds))
