"""Guided failure (issue 21): what may be decided about a failed or interrupted step, who owns
the decision, and what each choice needs. Pure: no I/O; the caller asks the policy
(``runbook.rules.policy``) before any of this, as for every click.

Options, in the order the card shows them:

* **Retry** only when the step is idempotent (``Step.idempotent``: the runbook's word, else the
  kind's default); a gated step asks for a new approval, as today;
* **Skip** with a written reason and a second person's approval (never the owner); recorded as
  a deviation;
* **Roll back** the rollback request, under its usual rule (offered while the rollback plan
  has not started);
* **Hold** stay where the run is and page the operators, with a reminder;
* **Abort the run** with the run's RC tag typed exactly and a reason.

Ownership: the first operator who clicks *Take it* owns the decision; a second click by someone
else is told who owns it. Only the owner's choice counts.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum

from runbook.model import Step

__all__ = ["DECIDABLE", "Choice", "Option", "check_abort", "check_choice", "check_skip_approval",
           "options", "take"]

DECIDABLE = frozenset({"failed", "interrupted"})
MIN_REASON = 10


class Option(StrEnum):
    RETRY = "retry"
    SKIP = "skip"
    ROLLBACK = "rollback"
    HOLD = "hold"
    ABORT = "abort"


@dataclass(frozen=True)
class Choice:
    option: Option
    label: str
    needs_reason: bool = False
    needs_second_person: bool = False
    needs_tag: bool = False


def options(step: Step, state: str, *, rollback_started: bool = False) -> tuple[Choice, ...]:
    """The choices the card offers for ``step`` in ``state`` (none unless failed/interrupted)."""
    if state not in DECIDABLE:
        return ()
    out: list[Choice] = []
    if step.idempotent:
        out.append(Choice(Option.RETRY, "Retry (asks for approval again)" if step.gated
                          else "Retry"))
    out.append(Choice(Option.SKIP, "Skip", needs_reason=True, needs_second_person=True))
    if not rollback_started:
        out.append(Choice(Option.ROLLBACK, "Roll back"))
    out.append(Choice(Option.HOLD, "Hold"))
    out.append(Choice(Option.ABORT, "Abort the run", needs_reason=True, needs_tag=True))
    return tuple(out)


def take(owner: str | None, user: str) -> tuple[str, str | None]:
    """``Take it`` clicked by ``user``: (the owner afterwards, a refusal or None)."""
    if owner is None or owner == user:
        return user, None
    return owner, f"<@{owner}> owns this decision; ask them, or wait for them to release it."


def check_choice(*, owner: str | None, user: str, option: Option, step: Step, state: str,
                 rollback_started: bool = False) -> str | None:
    """Why ``user`` may not choose ``option`` now, or None."""
    if owner is None:
        return "Click *Take it* first: one person owns the decision."
    if owner != user:
        return f"<@{owner}> owns this decision; only their choice counts."
    offered: Collection[Option] = {c.option for c in options(step, state,
                                                             rollback_started=rollback_started)}
    if option not in offered:
        if option is Option.RETRY and state in DECIDABLE:
            return (f"*{step.title}* is not idempotent in the runbook, so it is not retried; "
                    "Skip, Roll back, Hold or Abort.")
        return f"{option.value} is not an option for *{step.title}* now."
    return None


def _reason_problem(reason: str | None) -> str | None:
    if not reason or len(reason.strip()) < MIN_REASON:
        return f"Write a reason (at least {MIN_REASON} characters): it goes into the audit."
    return None


def check_skip_approval(*, owner: str, approver: str, reason: str | None) -> str | None:
    """A Skip needs a reason and a second person: why this approval does not count, or None."""
    if (problem := _reason_problem(reason)) is not None:
        return problem
    if approver == owner:
        return "A skip needs a second person: you asked for it, someone else approves it."
    return None


def check_abort(*, typed: str, rc_tag: str | None, reason: str | None) -> str | None:
    """Abort needs the run's RC tag typed exactly and a reason: what is wrong, or None."""
    if rc_tag is None:
        if typed.strip() != "abort":
            return "This run has no RC tag: type `abort` to confirm."
    elif typed.strip() != rc_tag:
        return f"Type the run's RC tag `{rc_tag}` exactly to abort it."
    return _reason_problem(reason)
