"""The two-person rule, as a pure function.

``decide(request, click, now, policy) -> Decision`` says what a click on an approval card
means. It never writes anything: the caller persists ``Decision.new_status`` and
``Decision.approvals`` in one transaction (with a unique constraint on (request, approver) so a
double click is a no-op) and only then enqueues the step.

Order of checks in :func:`decide` (first match wins, so the answer is deterministic):

1. the request is not ``pending``                    -> ALREADY_DECIDED (status unchanged)
2. ``now >= expires_at``                             -> EXPIRED         (status ``expired``)
3. ``click.current_params_hash != params_hash``      -> REFUSED PARAMS_CHANGED (``void``)
4. ``cancel``: only the requester                    -> CANCELLED, or REFUSED NOT_REQUESTER
5. ``approve``/``reject`` by the requester           -> REFUSED SELF_APPROVAL
6. eligibility, :func:`is_eligible`, in this order:
   DEACTIVATED, BOT_ACCOUNT, GUEST_ACCOUNT, NOT_AN_APPROVER, NOT_IN_GROUP
7. ``reject``                                        -> REJECTED        (status ``rejected``)
8. ``approve`` by someone who already approved       -> REFUSED ALREADY_VOTED
9. ``approve``: PARTIAL while fewer than ``required`` distinct approvers, then APPROVED.

A refusal (other than PARAMS_CHANGED) leaves the request as it was: ``new_status`` is the
current status and ``approvals`` are unchanged. A person who approved may still reject
(a veto): rejection needs only one eligible approver.

Times must be timezone-aware datetimes; the clock is the caller's ``now``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from runbook.rules.canonical import canonical_json, sha256_hex

__all__ = [
    "PENDING",
    "STATUSES",
    "Actor",
    "ApprovalClick",
    "Decision",
    "DecisionOutcome",
    "Policy",
    "Refusal",
    "Request",
    "decide",
    "is_eligible",
    "params_hash",
]

PENDING = "pending"
STATUSES = ("pending", "approved", "rejected", "cancelled", "expired", "void")
CLICK_KINDS = ("approve", "reject", "cancel")


class DecisionOutcome(StrEnum):
    APPROVED = "approved"
    PARTIAL = "partial"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    REFUSED = "refused"
    ALREADY_DECIDED = "already_decided"
    EXPIRED = "expired"


class Refusal(StrEnum):
    SELF_APPROVAL = "self_approval"
    NOT_AN_APPROVER = "not_an_approver"
    NOT_IN_GROUP = "not_in_group"
    DEACTIVATED = "deactivated"
    BOT_ACCOUNT = "bot_account"
    GUEST_ACCOUNT = "guest_account"
    ALREADY_VOTED = "already_voted"
    PARAMS_CHANGED = "params_changed"
    NOT_REQUESTER = "not_requester"


@dataclass(frozen=True)
class Policy:
    approvers: frozenset[str] = frozenset()
    """User ids allowed to approve anything (unless a request names groups)."""
    groups: Mapping[str, frozenset[str]] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )
    """Group name -> member user ids, resolved by the caller at click time."""
    expiry: timedelta = timedelta(minutes=15)


@dataclass(frozen=True)
class Request:
    id: str
    run_id: int
    action: str
    params: Mapping[str, Any] = field(hash=False)
    params_hash: str
    requester: str
    created_at: datetime
    expires_at: datetime
    status: str
    required: int
    groups: tuple[str, ...]
    approvals: tuple[str, ...]
    decided_by: str | None = None
    """Who made the request leave ``pending`` (approver, rejecter, canceller), if known."""


@dataclass(frozen=True)
class Actor:
    user_id: str
    deleted: bool = False
    is_bot: bool = False
    is_guest: bool = False
    """Slack ``is_restricted`` or ``is_ultra_restricted``."""


@dataclass(frozen=True)
class ApprovalClick:
    kind: str
    """``approve`` | ``reject`` | ``cancel``."""
    actor: Actor
    current_params_hash: str
    """The hash of the parameters the step would run with *now* (recomputed by the caller)."""
    reason: str = ""


@dataclass(frozen=True)
class Decision:
    outcome: DecisionOutcome
    refusal: Refusal | None
    message: str
    """A short sentence for the clicking user (ephemeral) or the card."""
    new_status: str
    approvals: tuple[str, ...]

    @property
    def changed(self) -> bool:
        """Whether the caller has something to persist (status or approvals moved)."""
        return self.outcome in (
            DecisionOutcome.APPROVED, DecisionOutcome.PARTIAL, DecisionOutcome.REJECTED, DecisionOutcome.CANCELLED,
            DecisionOutcome.EXPIRED,
        ) or self.refusal is Refusal.PARAMS_CHANGED


# ------------------------------------------------------------------------------- hashing


def params_hash(run_id: int | str | None, action: str, params: Mapping[str, Any]) -> str:
    """sha256 (hex) of the canonical JSON of ``{"run", "action", "params"}``.

    Stable across dict ordering; ``"1"`` and ``1`` differ; tuples hash like lists; keys must
    be strings and values JSON (no NaN) or ``TypeError``/``ValueError`` is raised.
    """
    doc = {"run": run_id, "action": action, "params": params}
    return sha256_hex(canonical_json(doc, "parameter"))


# ------------------------------------------------------------------------------- requests


def _aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {value!r}")


def is_eligible(
    user: Actor, policy: Policy, groups: tuple[str, ...] | list[str] = (),
    *, requester: str | None = None,
) -> Refusal | None:
    """None if ``user`` could approve a request naming ``groups``; else why not.

    Checks, in order: SELF_APPROVAL (only when ``requester`` is given), DEACTIVATED,
    BOT_ACCOUNT, GUEST_ACCOUNT, NOT_AN_APPROVER (in neither ``policy.approvers`` nor any
    policy group), NOT_IN_GROUP (``groups`` given and the user is in none of them; a group
    name missing from ``policy.groups`` has no members).
    """
    if requester is not None and user.user_id == requester:
        return Refusal.SELF_APPROVAL
    if user.deleted:
        return Refusal.DEACTIVATED
    if user.is_bot:
        return Refusal.BOT_ACCOUNT
    if user.is_guest:
        return Refusal.GUEST_ACCOUNT
    uid = user.user_id
    if uid not in policy.approvers and not any(uid in m for m in policy.groups.values()):
        return Refusal.NOT_AN_APPROVER
    if groups and not any(uid in policy.groups.get(g, frozenset()) for g in groups):
        return Refusal.NOT_IN_GROUP
    return None


def _who(user_id: str | None) -> str:
    return f" by <@{user_id}>" if user_id else ""


def _already(request: Request) -> str:
    by = _who(request.decided_by)
    return {
        "approved": f"Already approved{by}.",
        "rejected": f"Already rejected{by}.",
        "cancelled": f"Already cancelled{by}.",
        "expired": "This request expired; ask for a new one.",
        "void": "This request is void because its parameters changed; ask for a new one.",
    }.get(request.status, f"This request is already {request.status}.")


def _groups_text(groups: tuple[str, ...]) -> str:
    return ", ".join(f"`{g}`" for g in groups)


def _refusal_message(refusal: Refusal, request: Request, click: ApprovalClick) -> str:
    action = request.action
    if refusal is Refusal.SELF_APPROVAL:
        if click.kind == "reject":
            return f"You requested this {action}; use Cancel to withdraw it."
        return f"You requested this {action}, so someone else must approve it."
    if refusal is Refusal.DEACTIVATED:
        return "Deactivated accounts cannot approve."
    if refusal is Refusal.BOT_ACCOUNT:
        return "Bot accounts cannot approve."
    if refusal is Refusal.GUEST_ACCOUNT:
        return "Guest accounts cannot approve."
    if refusal is Refusal.NOT_AN_APPROVER:
        return f"You are not an approver, so you cannot {click.kind} this {action}."
    if refusal is Refusal.NOT_IN_GROUP:
        return f"This {action} needs an approver from {_groups_text(request.groups)}."
    if refusal is Refusal.ALREADY_VOTED:
        return (
            f"You already approved this {action}; it needs "
            f"{request.required - len(request.approvals)} more approver(s)."
        )
    if refusal is Refusal.PARAMS_CHANGED:
        return (
            f"The parameters of this {action} changed since it was requested; "
            "this request is void, ask for a new one."
        )
    if refusal is Refusal.NOT_REQUESTER:
        return f"Only <@{request.requester}> can cancel this {action}."
    return "Refused."  # pragma: no cover - every Refusal is handled above


def decide(request: Request, click: ApprovalClick, now: datetime, policy: Policy) -> Decision:
    """Apply the two-person rule to one click. See the module docstring for the order."""
    if click.kind not in CLICK_KINDS:
        raise ValueError(f"unknown click kind {click.kind!r}; expected one of {CLICK_KINDS}")
    _aware("now", now)

    def refuse(refusal: Refusal, new_status: str | None = None) -> Decision:
        return Decision(
            DecisionOutcome.REFUSED, refusal, _refusal_message(refusal, request, click),
            new_status or request.status, request.approvals,
        )

    # 1. decided already
    if request.status != PENDING:
        return Decision(
            DecisionOutcome.ALREADY_DECIDED, None, _already(request), request.status, request.approvals
        )
    # 2. expired
    if now >= request.expires_at:
        return Decision(
            DecisionOutcome.EXPIRED, None,
            f"This {request.action} request expired; ask for a new one.",
            "expired", request.approvals,
        )
    # 3. parameters changed -> the request can never be approved
    if click.current_params_hash != request.params_hash:
        return refuse(Refusal.PARAMS_CHANGED, "void")
    uid = click.actor.user_id
    # 4. cancel
    if click.kind == "cancel":
        if uid != request.requester:
            return refuse(Refusal.NOT_REQUESTER)
        return Decision(
            DecisionOutcome.CANCELLED, None, f"Cancelled the {request.action} request.",
            "cancelled", request.approvals,
        )
    # 5. + 6. who may approve or reject
    refusal = is_eligible(click.actor, policy, request.groups, requester=request.requester)
    if refusal is not None:
        return refuse(refusal)
    # 7. reject
    if click.kind == "reject":
        # Slack's three control characters escaped: a reason never becomes a mention or link.
        reason = click.reason.strip().replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        why = f": {reason}" if reason else "."
        return Decision(
            DecisionOutcome.REJECTED, None, f"Rejected the {request.action}{why}",
            "rejected", request.approvals,
        )
    # 8. double vote
    if uid in request.approvals:
        return refuse(Refusal.ALREADY_VOTED)
    # 9. count
    approvals = request.approvals + (uid,)
    if len(approvals) >= request.required:
        return Decision(
            DecisionOutcome.APPROVED, None, f"Approved the {request.action}.", "approved", approvals
        )
    missing = request.required - len(approvals)
    return Decision(
        DecisionOutcome.PARTIAL, None,
        f"Approval recorded ({len(approvals)} of {request.required}); "
        f"{missing} more needed.",
        PENDING, approvals,
    )
