"""The canary's buttons and modals: a mixin of ``bot.app.Listeners`` on the shared life of a
listener (``bot.listeners.ListenerBase``: inbox order, policy, replies), registered from
``bot.app.TABLE`` like every other listener.

Every lazy half runs through the inbox and asks the policy first; a click counts only on the
canary message it belongs to. Ledger checks run after the inbox commit (the person already
has the "Checking…" reply in the thread), never inside the request's transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_sdk.models.blocks import InputBlock, PlainTextInputElement, SectionBlock
from slack_sdk.models.views import View

from bot.engine import Refused, Requester
from bot.ids import Action, Block, Callback
from bot.listeners import Defer, ListenerBase
from bot.slack.blocks import reason_modal
from bot.slack.payloads import Click, input_value, reason_of, submission
from runbook.rules import policy

log = logging.getLogger(__name__)

STALE = "That canary message is out of date or was not sent by golive; nothing was done."
# button action -> (the message it lives on, what it does)
ON_CARD = {Action.CANARY_DEPOSIT: "canary", Action.CANARY_WITHDRAWAL: "canary",
           Action.CANARY_EVIDENCE: "canary", Action.CANARY_SIGN: "canary-signoff",
           Action.CANARY_REJECT: "canary-signoff", Action.CANARY_ROLLBACK: "canary-final"}


@dataclass(frozen=True)
class CanaryMeta:
    """A canary modal's submission: who, which canary, what for, from which message."""

    user: str
    canary: int
    what: str
    channel: str
    message_ts: str | None

    @classmethod
    def read(cls, body: Any, view: Any) -> CanaryMeta | None:
        user, parts, cid = submission(body, view)
        if user is None or cid is None or len(parts) != 4 or not parts[1] or not parts[2]:
            log.warning("ignored a malformed canary modal submission")
            return None
        return cls(user, cid, parts[1], parts[2], parts[3] or None)

    @property
    def private(self) -> str:
        return f"{self.canary}|{self.what}|{self.channel}|{self.message_ts or ''}"


def report_modal(meta: CanaryMeta, noun: str, hint: str) -> dict:
    """Reference (required) and amount (optional: the ledger's amount is checked anyway)."""
    return View(type="modal", callback_id=Callback.CANARY_REPORT, title=f"Report {noun}"[:24],
                submit="Check ledger", close="Back", private_metadata=meta.private, blocks=[
                    SectionBlock(text=hint[:3000]),
                    InputBlock(block_id=Block.CANARY_REFERENCE, label="Transaction or PSP reference",
                               element=PlainTextInputElement(
                                   action_id=Block.CANARY_REFERENCE_INPUT, max_length=128)),
                    InputBlock(block_id=Block.CANARY_AMOUNT, label="Amount", optional=True,
                               element=PlainTextInputElement(
                                   action_id=Block.CANARY_AMOUNT_INPUT, max_length=40,
                                   placeholder="10.00"))]).to_dict()


def sign_modal(meta: CanaryMeta) -> dict:
    return View(type="modal", callback_id=Callback.CANARY_SIGN, title="Sign the canary",
                submit="Sign", close="Back", private_metadata=meta.private, blocks=[
                    InputBlock(block_id=Block.CANARY_NOTE, label="Note (optional)", optional=True,
                               element=PlainTextInputElement(action_id=Block.CANARY_NOTE_INPUT,
                                                             multiline=True, max_length=500))]
                ).to_dict()


class CanaryListeners(ListenerBase):
    """The canary's listeners (mixed into ``bot.app.Listeners``; ``self.canary`` is the room)."""

    canary: Any = None

    # ------------------------------------------------------------ buttons
    def _canary_click(self, body: Any, action: Any, respond: Callable[..., Any], context: Any,
                      act: policy.EntryPoint, work: Callable[[Click], str]) -> None:
        """A click counts only on the canary message it belongs to."""
        if self.canary is None:
            return

        def checked(click: Click) -> str:
            if click.message_ts != self.canary.card_ts(click.value, ON_CARD[action["action_id"]]):
                raise Refused(STALE)
            return work(click)
        self.on_click(body, action, respond, context, act, checked)

    def _open(self, client: Any, click: Click, what: str, build: Callable[[CanaryMeta], dict]
              ) -> str:
        meta = CanaryMeta(click.user, click.value, what, click.channel, click.message_ts)
        return self.open_modal(client, click, build(meta), stale=STALE)

    def canary_deposit(self, body: dict, action: dict, respond: Callable[..., Any], client: Any,
                       context: Any) -> None:
        self._canary_click(body, action, respond, context, policy.EntryPoint.CANARY_REPORT,
                           lambda c: self._open(client, c, "deposit", lambda m: report_modal(
                               m, "deposit", self._hint("deposit"))))

    def canary_withdrawal(self, body: dict, action: dict, respond: Callable[..., Any],
                          client: Any, context: Any) -> None:
        self._canary_click(body, action, respond, context, policy.EntryPoint.CANARY_REPORT,
                           lambda c: self._open(client, c, "withdrawal", lambda m: report_modal(
                               m, "withdrawal", self._hint("withdrawal"))))

    def _hint(self, item: str) -> str:
        cfg = self.config.canary
        amount = cfg.deposit_amount if item == "deposit" else cfg.withdraw_amount
        return (f"The {item} of {amount} {cfg.currency} on account `{cfg.account}`: paste its "
                "transaction or payout id, or its PSP reference. The bot checks it in the ledger.")

    def canary_evidence(self, body: dict, action: dict, respond: Callable[..., Any],
                        context: Any) -> None:
        self._canary_click(body, action, respond, context, policy.EntryPoint.CANARY_EVIDENCE,
                           lambda c: self.canary.collect(c.value, by=c.user))

    def canary_sign(self, body: dict, action: dict, respond: Callable[..., Any], client: Any,
                    context: Any) -> None:
        self._canary_click(body, action, respond, context, policy.EntryPoint.CANARY_SIGN,
                           lambda c: self._open(client, c, "sign", sign_modal))

    def canary_reject(self, body: dict, action: dict, respond: Callable[..., Any], client: Any,
                      context: Any) -> None:
        self._canary_click(body, action, respond, context, policy.EntryPoint.CANARY_SIGN,
                           lambda c: self._open(client, c, "reject", lambda m: reason_modal(
                               callback_id=Callback.CANARY_REJECT, title="Reject the canary",
                               label="Why is this canary a NO-GO?",
                               private_metadata=m.private)))

    def canary_rollback(self, body: dict, action: dict, respond: Callable[..., Any],
                        context: Any) -> None:
        """Start rollback after a NO-GO: the same action and engine call as the command."""
        self._canary_click(body, action, respond, context, policy.EntryPoint.CANARY_ROLLBACK,
                           lambda c: self.engine.request_rollback(
                               actor=Requester(c.user, c.channel),
                               reason=f"canary NO-GO (canary #{c.value})"))

    # ------------------------------------------------------------ modals
    def _canary_submitted(self, body: Any, view: Any, client: Any, context: Any,
                          act: policy.EntryPoint, work: Callable[[CanaryMeta], Any]) -> None:
        meta = CanaryMeta.read(body, view)
        if meta is None or self.canary is None:
            return

        def say(text: str) -> None:
            if text:
                client.chat_postEphemeral(channel=meta.channel, user=meta.user, text=text)

        facts = self.lookup(act, meta.user)  # in Slack, before the transaction opens

        def flow(later: Defer) -> None:
            after: list[Any] = []

            def checked() -> str:
                kind = "canary" if meta.what in ("deposit", "withdrawal") else "canary-signoff"
                if meta.message_ts != self.canary.card_ts(meta.canary, kind):
                    raise Refused(STALE)
                return work(meta, after) or ""
            self.act(act, meta.user, meta.channel, later(say), checked, code="canary",
                     facts=facts)
            for v in after:  # the ledger check, once the report is committed
                later(self._verify)(meta.canary, v)
        self.in_order(context, meta.channel, say, flow)

    def _verify(self, canary_id: int, v: Any) -> None:
        try:
            self.canary.run_verify(canary_id, v)
        except Exception:
            log.exception("canary %s: the %s check failed to run", canary_id, v.item)

    def canary_report_submitted(self, body: dict, view: dict, client: Any, context: Any
                                ) -> None:
        def work(meta: CanaryMeta, after: list[Any]) -> str:
            v = self.canary.report(meta.canary, meta.what,
                                   input_value(view, Block.CANARY_REFERENCE,
                                          Block.CANARY_REFERENCE_INPUT),
                                   input_value(view, Block.CANARY_AMOUNT, Block.CANARY_AMOUNT_INPUT)
                                   or None, meta.user)
            if v is not None:
                after.append(v)
            return ""  # the thread has the reply
        self._canary_submitted(body, view, client, context, policy.EntryPoint.CANARY_REPORT, work)

    def canary_sign_submitted(self, body: dict, view: dict, client: Any, context: Any) -> None:
        self._canary_submitted(body, view, client, context, policy.EntryPoint.CANARY_SIGN,
                               lambda meta, _: self.canary.sign(
                                   meta.canary, meta.user, decision="sign",
                                   note=input_value(view, Block.CANARY_NOTE, Block.CANARY_NOTE_INPUT))
                               and "")

    def canary_reject_submitted(self, body: dict, view: dict, client: Any, context: Any
                                ) -> None:
        self._canary_submitted(body, view, client, context, policy.EntryPoint.CANARY_SIGN,
                               lambda meta, _: self.canary.sign(
                                   meta.canary, meta.user, decision="reject",
                                   note=reason_of(view)) and "")


CANARY_TABLE: list[tuple[str, str, str, str]] = [
    ("action", Action.CANARY_DEPOSIT, "acked_click", "canary_deposit"),
    ("action", Action.CANARY_WITHDRAWAL, "acked_click", "canary_withdrawal"),
    ("action", Action.CANARY_EVIDENCE, "acked_click", "canary_evidence"),
    ("action", Action.CANARY_SIGN, "acked_click", "canary_sign"),
    ("action", Action.CANARY_REJECT, "acked_click", "canary_reject"),
    ("action", Action.CANARY_ROLLBACK, "acked_click", "canary_rollback"),
    ("view", Callback.CANARY_REPORT, "just_ack", "canary_report_submitted"),
    ("view", Callback.CANARY_SIGN, "just_ack", "canary_sign_submitted"),
    ("view", Callback.CANARY_REJECT, "ack_reason", "canary_reject_submitted"),
]
"""Spliced into ``bot.app.TABLE`` before its catch-all rows."""
