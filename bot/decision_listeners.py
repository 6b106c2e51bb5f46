"""Guided failure's buttons and modals (issue 21): a mixin of ``bot.app.Listeners`` on the
shared life of a listener (``bot.listeners.ListenerBase``: inbox order, the policy first, an
ephemeral reply, every refusal audited), registered from ``bot.app.TABLE``.

Each button carries the failed step's execution id; the engine (``bot.engine.decisions``)
checks that the card is still live, who owns the decision and what the runbook allows. Skip and
Abort open a modal only for the owner (checked before it opens, and again at submission).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.ids import Action, Block, Callback
from bot.listeners import ListenerBase
from bot.slack import decision_blocks
from bot.slack.payloads import Click, Metadata, input_value, reason_of
from runbook.rules import policy
from runbook.rules.guided_failure import Option

EP = policy.EntryPoint


class DecisionListeners(ListenerBase):
    """See the module docstring."""

    def _decide(self, body: dict, action: dict, respond: Callable[..., Any], context: Any,
                act: policy.EntryPoint, work: Callable[[Click], str]) -> None:
        self.on_click(body, action, respond, context, act, work)

    def _choose(self, body: dict, action: dict, respond: Callable[..., Any], context: Any,
                act: policy.EntryPoint, choice: str) -> None:
        """A choice that needs nothing but the click: ``engine.decisions.<choice>``."""
        self._decide(body, action, respond, context, act,
                     lambda c: getattr(self.engine.decisions, choice)(
                         execution_id=c.value, user_id=c.user, channel=c.channel))

    def decision_take(self, body: dict, action: dict, respond: Callable[..., Any],
                      context: Any) -> None:
        self._choose(body, action, respond, context, EP.DECISION_TAKE, "take")

    def decision_retry(self, body: dict, action: dict, respond: Callable[..., Any],
                       context: Any) -> None:
        self.on_click(body, action, respond, context, EP.DECISION_RETRY,
                      lambda c: self.engine.decisions.retry(execution_id=c.value,
                                                            user_id=c.user, channel=c.channel),
                      prepare=lambda c: self.engine.prepare_retry(c.value))

    def decision_rollback(self, body: dict, action: dict, respond: Callable[..., Any],
                          context: Any) -> None:
        self._choose(body, action, respond, context, EP.DECISION_ROLLBACK, "rollback")

    def decision_hold(self, body: dict, action: dict, respond: Callable[..., Any],
                      context: Any) -> None:
        self._choose(body, action, respond, context, EP.DECISION_HOLD, "hold")

    def decision_skip_approve(self, body: dict, action: dict, respond: Callable[..., Any],
                              context: Any) -> None:
        self._choose(body, action, respond, context, EP.DECISION_SKIP_APPROVE, "approve_skip")

    def decision_skip(self, body: dict, action: dict, respond: Callable[..., Any], client: Any,
                      context: Any) -> None:
        def work(c: Click) -> str:
            step = self.engine.decisions.check(execution_id=c.value, user_id=c.user,
                                               option=Option.SKIP)
            return self.open_modal(client, c, decision_blocks.skip_modal(Metadata.of(c), step))
        self._decide(body, action, respond, context, EP.DECISION_SKIP, work)

    def decision_abort(self, body: dict, action: dict, respond: Callable[..., Any], client: Any,
                       context: Any) -> None:
        def work(c: Click) -> str:
            self.engine.decisions.check(execution_id=c.value, user_id=c.user,
                                        option=Option.ABORT)
            return self.open_modal(client, c, decision_blocks.abort_modal(
                Metadata.of(c), self.engine.decisions.rc_tag(c.value)))
        self._decide(body, action, respond, context, EP.DECISION_ABORT, work)

    def decision_skip_submitted(self, body: dict, view: dict, client: Any, context: Any
                                ) -> None:
        meta = Metadata.read(body, view)
        if meta is not None:
            self.submitted(context, EP.DECISION_SKIP_SUBMIT, meta, client,
                           lambda: self.engine.decisions.ask_skip(
                               execution_id=meta.value, user_id=meta.user, channel=meta.channel,
                               reason=reason_of(view)))

    def decision_abort_submitted(self, body: dict, view: dict, client: Any, context: Any
                                 ) -> None:
        meta = Metadata.read(body, view)
        if meta is not None:
            self.submitted(context, EP.DECISION_ABORT_SUBMIT, meta, client,
                           lambda: self.engine.decisions.abort(
                               execution_id=meta.value, user_id=meta.user, channel=meta.channel,
                               typed=input_value(view, Block.DECISION_TAG,
                                                 Block.DECISION_TAG_INPUT),
                               reason=reason_of(view)))


DECISION_TABLE: list[tuple[str, str, str, str]] = [
    ("action", Action.DECISION_TAKE, "acked_click", "decision_take"),
    ("action", Action.DECISION_RETRY, "acked_click", "decision_retry"),
    ("action", Action.DECISION_SKIP, "acked_click", "decision_skip"),
    ("action", Action.DECISION_SKIP_APPROVE, "acked_click", "decision_skip_approve"),
    ("action", Action.DECISION_ROLLBACK, "acked_click", "decision_rollback"),
    ("action", Action.DECISION_HOLD, "acked_click", "decision_hold"),
    ("action", Action.DECISION_ABORT, "acked_click", "decision_abort"),
    ("view", Callback.DECISION_SKIP, "ack_reason", "decision_skip_submitted"),
    ("view", Callback.DECISION_ABORT, "ack_reason", "decision_abort_submitted"),
]
"""Spliced into ``bot.app.TABLE`` before its catch-all rows."""
