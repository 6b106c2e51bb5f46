"""Who may do what, where: one pure function for every entry point.

``decide(action=, actor=, channel=, rules=) -> Verdict`` answers "may this person do this
action here, and if not, why". It never looks anything up: the caller resolves the facts
(the account's flags, operator membership) and supplies the configured channels. A fact the
caller could not resolve (``operator=None``) refuses: the policy fails closed.

The rules, one row per entry point (:data:`RULES`):

* **Channels.** ``help`` works in every channel and in a DM with the bot (it changes nothing
  and says where the rest works: :func:`where_text`). Everything else works only in the cutover
  channel, except ``/golive rollback``, ``incident`` and ``status`` (and the Start rollback
  buttons, which are the same action as the command), which also work in the incident channels. Clicks and modals on a rollback
  request's card work where that card can be: the cutover or an incident channel.
* **People.** ``status`` and ``help`` are open to everyone. Starting and finishing a run,
  requesting steps (every subcommand the runbook's step commands define is one action,
  :attr:`EntryPoint.STEP`), the autopilot (``go``, ``pause``), rollback, Retry and Mark done need
  an *operator*. Approve, Reject and
  Cancel need an active human account here; who may approve is the two-person rule's
  business (:mod:`runbook.rules.approvals`). Guests, bots and deactivated accounts are refused
  everywhere except ``status`` and ``help``, checked in :func:`runbook.rules.approvals.is_eligible`'s
  order.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from runbook.rules import approvals

__all__ = [
    "RULES",
    "ActorFacts",
    "EntryPoint",
    "PolicyRefusal",
    "Rule",
    "Rules",
    "Verdict",
    "Where",
    "Who",
    "command_action",
    "decide",
    "needs_account",
    "needs_operator",
    "where_text",
]


class EntryPoint(StrEnum):
    """Every entry point: each subcommand, each button, each modal submission."""

    HELP = "help"
    STATUS = "status"
    START = "start"
    FINISH = "finish"
    STEP = "step"
    """Any subcommand derived from the runbook's step commands (``deploy``, ``maintenance``)."""
    ROLLBACK = "rollback"
    WATCH = "watch"
    INCIDENT = "incident"
    APPROVE = "button.approve"
    REJECT = "button.reject"
    REJECT_SUBMIT = "modal.reject"
    CANCEL = "button.cancel"
    RETRY = "button.retry"
    MARK_DONE = "button.mark_done"
    MARK_DONE_SUBMIT = "modal.mark_done"
    START_ROLLBACK = "button.start_rollback"
    CANARY = "canary"
    CANARY_REPORT = "button.canary_report"
    """Report a deposit or withdrawal (button and modal): the ledger decides if it is true."""
    CANARY_EVIDENCE = "button.canary_evidence"
    CANARY_SIGN = "button.canary_sign"
    """Sign or Reject (buttons and modals); who may sign is the canary machine's business."""
    CANARY_ROLLBACK = "button.canary_rollback"
    PLAN = "plan"
    """`/golive plan`: computes and posts the night's plan. It changes nothing on the target,
    but reads every system the night touches (seconds of work) and posts a card and a file in
    the cutover channel: an active human account there, as for Approve (no guest, no bot)."""
    GO = "go"
    """Start or resume the autopilot (it then requests steps on the operator's behalf)."""
    PAUSE = "pause"
    DECISION_TAKE = "button.decision_take"
    """Take it: own a failed or interrupted step's decision (guided failure, issue 21)."""
    DECISION_RETRY = "button.decision_retry"
    DECISION_SKIP = "button.decision_skip"
    DECISION_SKIP_SUBMIT = "modal.decision_skip"
    DECISION_SKIP_APPROVE = "button.decision_skip_approve"
    """The second person's approval of a Skip: an active account here; whether they may
    approve is the two-person rule's business, as for Approve."""
    DECISION_ROLLBACK = "button.decision_rollback"
    DECISION_HOLD = "button.decision_hold"
    DECISION_ABORT = "button.decision_abort"
    DECISION_ABORT_SUBMIT = "modal.decision_abort"


class Where(StrEnum):
    CUTOVER = "cutover"
    CUTOVER_OR_INCIDENT = "cutover_or_incident"
    ANYWHERE = "anywhere"
    """Every channel and a DM with the bot."""


class Who(StrEnum):
    ANYONE = "anyone"
    ACTIVE = "active"
    """An active human account (not a guest, bot or deactivated)."""
    OPERATOR = "operator"
    """An active human account that is an operator."""


class PolicyRefusal(StrEnum):
    WRONG_CHANNEL = "wrong_channel"
    DEACTIVATED = "deactivated"
    BOT_ACCOUNT = "bot_account"
    GUEST_ACCOUNT = "guest_account"
    NOT_AN_OPERATOR = "not_an_operator"
    UNKNOWN_MEMBERSHIP = "unknown_membership"


@dataclass(frozen=True)
class Rule:
    where: Where
    who: Who
    what: str
    """How a refusal names the action, e.g. "`/golive start`"."""


_STEP = Who.OPERATOR
RULES: dict[EntryPoint, Rule] = {
    EntryPoint.HELP: Rule(Where.ANYWHERE, Who.ANYONE, "`/golive help`"),
    EntryPoint.STATUS: Rule(Where.CUTOVER_OR_INCIDENT, Who.ANYONE, "`/golive status`"),
    EntryPoint.START: Rule(Where.CUTOVER, Who.OPERATOR, "`/golive start`"),
    EntryPoint.FINISH: Rule(Where.CUTOVER, Who.OPERATOR, "`/golive finish`"),
    EntryPoint.STEP: Rule(Where.CUTOVER, _STEP, "a runbook step"),
    EntryPoint.ROLLBACK: Rule(Where.CUTOVER_OR_INCIDENT, Who.OPERATOR, "rollback"),
    EntryPoint.WATCH: Rule(Where.CUTOVER, Who.OPERATOR, "`/golive watch`"),
    EntryPoint.INCIDENT: Rule(Where.CUTOVER_OR_INCIDENT, Who.OPERATOR, "`/golive incident`"),
    EntryPoint.APPROVE: Rule(Where.CUTOVER, Who.ACTIVE, "Approve"),
    EntryPoint.REJECT: Rule(Where.CUTOVER, Who.ACTIVE, "Reject"),
    EntryPoint.REJECT_SUBMIT: Rule(Where.CUTOVER, Who.ACTIVE, "Reject"),
    EntryPoint.CANCEL: Rule(Where.CUTOVER, Who.ACTIVE, "Cancel request"),
    EntryPoint.RETRY: Rule(Where.CUTOVER, Who.OPERATOR, "Retry"),
    EntryPoint.MARK_DONE: Rule(Where.CUTOVER, Who.OPERATOR, "Mark done"),
    EntryPoint.MARK_DONE_SUBMIT: Rule(Where.CUTOVER, Who.OPERATOR, "Mark done"),
}
RULES.update({
    EntryPoint.CANARY: Rule(Where.CUTOVER, Who.OPERATOR, "`/golive canary`"),
    EntryPoint.CANARY_REPORT: Rule(Where.CUTOVER, Who.ACTIVE, "Report"),
    EntryPoint.CANARY_EVIDENCE: Rule(Where.CUTOVER, Who.ACTIVE, "Refresh evidence"),
    EntryPoint.CANARY_SIGN: Rule(Where.CUTOVER, Who.ACTIVE, "the canary sign-off"),
    EntryPoint.PLAN: Rule(Where.CUTOVER, Who.ACTIVE, "`/golive plan`"),
})
RULES.update({
    EntryPoint.GO: Rule(Where.CUTOVER, Who.OPERATOR, "`/golive go`"),
    EntryPoint.PAUSE: Rule(Where.CUTOVER, Who.OPERATOR, "`/golive pause`"),
})
RULES.update({
    EntryPoint.DECISION_TAKE: Rule(Where.CUTOVER, Who.OPERATOR, "Take it"),
    EntryPoint.DECISION_RETRY: Rule(Where.CUTOVER, Who.OPERATOR, "Retry"),
    EntryPoint.DECISION_SKIP: Rule(Where.CUTOVER, Who.OPERATOR, "Skip"),
    EntryPoint.DECISION_SKIP_SUBMIT: Rule(Where.CUTOVER, Who.OPERATOR, "Skip"),
    EntryPoint.DECISION_SKIP_APPROVE: Rule(Where.CUTOVER, Who.ACTIVE, "Approve skip"),
    EntryPoint.DECISION_ROLLBACK: Rule(Where.CUTOVER, Who.OPERATOR, "Roll back"),
    EntryPoint.DECISION_HOLD: Rule(Where.CUTOVER, Who.OPERATOR, "Hold"),
    EntryPoint.DECISION_ABORT: Rule(Where.CUTOVER, Who.OPERATOR, "Abort the run"),
    EntryPoint.DECISION_ABORT_SUBMIT: Rule(Where.CUTOVER, Who.OPERATOR, "Abort the run"),
})
# The button and the command are one action: one rule, so they cannot drift apart.
RULES[EntryPoint.START_ROLLBACK] = RULES[EntryPoint.ROLLBACK]
RULES[EntryPoint.CANARY_ROLLBACK] = RULES[EntryPoint.ROLLBACK]

_VOTES = (EntryPoint.APPROVE, EntryPoint.REJECT, EntryPoint.REJECT_SUBMIT, EntryPoint.CANCEL)


@dataclass(frozen=True)
class Rules:
    """The configured channels (Slack ids)."""

    cutover: str
    incident: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ActorFacts:
    """What the caller found out about the person, just before asking."""

    account: approvals.Actor
    """The account's flags (deleted, bot, guest), from users.info."""
    operator: bool | None = False
    """Whether the person is an operator; None when the lookup failed (refuses)."""


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str
    """For the person when refused (Slack mrkdwn); empty when allowed."""
    refusal: PolicyRefusal | None = None


ALLOWED = Verdict(True, "")


def command_action(name: str, *, runbook_step: bool = False) -> EntryPoint | None:
    """The action of a ``/golive`` subcommand (``runbook_step``: one the runbook's step
    commands define), or None for an unknown one."""
    if runbook_step:
        return EntryPoint.STEP
    try:
        action = EntryPoint(name)
    except ValueError:
        return None
    is_entry = action is not EntryPoint.STEP and not action.value.startswith(("button.", "modal."))
    return action if is_entry else None


def needs_account(action: EntryPoint) -> bool:
    """Whether ``decide`` needs the account's flags for ``action`` (a lookup the caller
    can skip for actions open to everyone)."""
    return RULES[action].who is not Who.ANYONE


def needs_operator(action: EntryPoint) -> bool:
    """Whether ``decide`` needs operator membership for ``action``."""
    return RULES[action].who is Who.OPERATOR


def _channels_text(rule: Rule, rules: Rules, about_rollback: bool) -> str:
    cutover = f"<#{rules.cutover}>"
    if rule.where is Where.CUTOVER and not about_rollback:
        return f"only in the cutover channel {cutover}"
    incident = ", ".join(f"<#{c}>" for c in sorted(rules.incident))
    if not incident:
        return f"only in the cutover channel {cutover}"
    return f"only in the cutover channel {cutover} or an incident channel ({incident})"


def where_text(rules: Rules) -> str:
    """Where the subcommands work, for ``/golive help`` (Slack mrkdwn), read from :data:`RULES`."""
    text = f"Subcommands work in the cutover channel <#{rules.cutover}>"
    if rules.incident:
        also = [f"`/golive {a.value}`" for a in EntryPoint if command_action(a.value) is a
                and RULES[a].where is Where.CUTOVER_OR_INCIDENT]
        incident = ", ".join(f"<#{c}>" for c in sorted(rules.incident))
        text += f"; {', '.join(also)} also in an incident channel ({incident})"
    return text + ". `/golive help` works anywhere, a DM with me included."


_ACCOUNT_TEXT = {
    approvals.Refusal.DEACTIVATED: (PolicyRefusal.DEACTIVATED, "Deactivated accounts cannot use"),
    approvals.Refusal.BOT_ACCOUNT: (PolicyRefusal.BOT_ACCOUNT, "Bot accounts cannot use"),
    approvals.Refusal.GUEST_ACCOUNT: (PolicyRefusal.GUEST_ACCOUNT, "Guest accounts cannot use"),
}


def decide(*, action: EntryPoint, actor: ActorFacts, channel: str, rules: Rules,
           about_rollback: bool = False, what: str | None = None) -> Verdict:
    """May ``actor`` do ``action`` in ``channel``? Channel first, then the account, then
    operator membership. ``about_rollback``: the click or modal concerns a rollback request.
    ``what``: how a refusal names the action, when more precise than the rule's (a step's
    subcommand, e.g. "`/golive deploy`")."""
    rule = RULES[action]
    if what is not None:
        rule = Rule(rule.where, rule.who, what)
    where = rule.where
    if about_rollback and action in _VOTES:
        where = Where.CUTOVER_OR_INCIDENT
    allowed = {rules.cutover} | (set(rules.incident) if where is Where.CUTOVER_OR_INCIDENT
                                 else set())
    if where is not Where.ANYWHERE and channel not in allowed:
        return Verdict(False, f"{rule.what} works {_channels_text(rule, rules, about_rollback)}.",
                       PolicyRefusal.WRONG_CHANNEL)
    if rule.who is Who.ANYONE:
        return ALLOWED
    uid = actor.account.user_id
    # Operators are "approvers of the right to operate": the same account checks, same order.
    as_policy = approvals.Policy(approvers=frozenset({uid}) if actor.operator else frozenset())
    refusal = approvals.is_eligible(actor.account, as_policy)
    if refusal in _ACCOUNT_TEXT:
        code, text = _ACCOUNT_TEXT[refusal]
        return Verdict(False, f"{text} {rule.what}.", code)
    if rule.who is Who.ACTIVE:
        return ALLOWED
    if actor.operator is None:
        return Verdict(False, "Could not check whether you are an operator, so nothing was "
                              "done. Try again in a moment.", PolicyRefusal.UNKNOWN_MEMBERSHIP)
    if refusal is approvals.Refusal.NOT_AN_APPROVER:
        return Verdict(False, f"Only operators can use {rule.what}; you are not one. "
                              "`/golive status` and `/golive help` are open to everyone.",
                       PolicyRefusal.NOT_AN_OPERATOR)
    return ALLOWED
