"""The shared life of a listener's lazy half, for ``bot.app.Listeners`` and every phase's mixin
(``bot/canary/listeners.py``): in order through the inbox, the policy first, then the engine
work, then an ephemeral reply; every refusal is an ephemeral reply and an audit row with its
reason, every failure a short message (never a stack trace).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.engine import Engine, Refused, Requester
from bot.ids import Block
from bot.inbox import Inbox
from bot.inbox import Outcome as InboxOutcome
from bot.slack.directory import Directory, DirectoryUnavailable
from bot.slack.payloads import Click, Metadata, field, reason_of
from bot.store.db import DatabaseUnavailable
from commands import Reply, UsageError
from runbook.rules import approvals, policy

log = logging.getLogger(__name__)

DB_DOWN = ("The bot's database is not answering, so nothing was changed. "
           "Try again in a moment; `/golive status` shows where things stand.")
STALE = "That card is out of date or was not sent by golive; nothing was done."
LANDING_WAIT_S = 2.0
"""How long a click waits for the ts of a message still being posted (see await_landing)."""
SLOW_TRIGGER = ("Slack allows 3 seconds to open the form and the bot was slower this time; "
                "nothing was done. Click the button again.")

Defer = Callable[[Callable[..., Any]], Callable[..., Any]]
"""Wraps a reply function so that its calls go out after the inbox commit."""
Facts = Callable[[], policy.ActorFacts]
"""What Slack said about a person, looked up before the inbox transaction opened (``lookup``);
calling it gives the facts, or raises what the lookup raised."""


class ListenerBase:
    """Inbox order, policy, engine work and replies; the listeners themselves are subclasses."""

    engine: Engine
    inbox: Inbox
    config: Any
    rules: policy.Rules
    operators: Directory
    operator_users: frozenset[str]

    # ------------------------------------------------------------ the inbox
    def in_order(self, context: Any, channel: str | None, say_down: Callable[[str], Any],
                 flow: Callable[[Defer], None]) -> None:
        """Run a lazy half as the one handling of its inbox request (bot/inbox.py): after the
        channel's earlier requests, in one transaction with its "done" mark; its replies
        (wrapped with the ``Defer`` it is given) go out after the commit."""
        inbox_id = context.get("inbox_id") if isinstance(context, dict) else None
        if inbox_id is None:  # help, status, Socket Mode: nothing recorded to handle in order
            flow(lambda fn: fn)
            return
        held: list[tuple[Callable[..., Any], tuple, dict]] = []

        def later(fn: Callable[..., Any]) -> Callable[..., Any]:
            return lambda *a, **k: held.append((fn, a, k))
        if self.inbox.handle(inbox_id, channel, lambda: flow(later)) is InboxOutcome.FAILED:
            say_down(DB_DOWN)  # nothing it did was committed, whatever it meant to say
            return

        def committed() -> None:
            self.engine.wake()  # what it queued is committed only now: the worker may claim it
            for fn, a, k in held:
                fn(*a, **k)
        self.inbox.after_commit(committed)  # now, or after its batch's commit (bot/inbox.py)

    # ------------------------------------------------------------ policy and replies
    def lookup(self, action: policy.EntryPoint, user: str) -> Facts:
        """Ask Slack what the rule for ``action`` needs to know about ``user`` now, before
        the inbox transaction opens: a slow users.info never holds the request's row lock
        (or a pooled connection) across a network call. A failed lookup fails when used."""
        try:
            got = self.facts(action, user)
        except (DirectoryUnavailable, DatabaseUnavailable) as e:
            failed = e

            def fail() -> policy.ActorFacts:
                raise failed
            return fail
        return lambda: got

    def facts(self, action: policy.EntryPoint, user: str) -> policy.ActorFacts:
        """Look up only what the rule for ``action`` needs; a failed group lookup is None."""
        if not policy.needs_account(action):
            return policy.ActorFacts(approvals.Actor(user))
        account = self.engine.account(user)  # DirectoryUnavailable: refused
        operator: bool | None = False
        if policy.needs_operator(action):
            try:
                operator = user in self.operator_users or any(
                    user in m for m in self.operators.group_members().values())
            except DirectoryUnavailable:
                operator = None
        return policy.ActorFacts(account, operator)

    def prepare_if_allowed(self, action: policy.EntryPoint, facts: Facts, channel: str,
                           prepare: Callable[[], Any]) -> None:
        """Run ``prepare`` (what a request's work needs from slow sources: a plan, a plan
        part) before the request's transaction opens, and only for someone the policy lets
        make it. A failure here is the work's to meet."""
        try:
            if policy.decide(action=action, actor=facts(), channel=channel,
                             rules=self.rules).allowed:
                prepare()
        except Exception as e:  # noqa: BLE001 - the work computes what is missing
            log.info("not prepared: %s", type(e).__name__)

    def allowed(self, action: policy.EntryPoint, user: str, channel: str, *,
                send: Callable[[str], Any], about_rollback: bool = False,
                audit_text: str | None = None, what: str | None = None,
                facts: Facts | None = None) -> bool:
        """Ask the policy (about ``facts`` looked up before, else looked up now); on a
        refusal, say why (ephemeral) and audit it."""
        try:
            actor = facts() if facts is not None else self.facts(action, user)
            verdict = policy.decide(action=action, actor=actor,
                                    channel=channel, rules=self.rules,
                                    about_rollback=about_rollback, what=what)
        except DirectoryUnavailable as e:
            verdict = policy.Verdict(False, e.message, None)
        except DatabaseUnavailable:
            verdict = policy.Verdict(False, DB_DOWN, None)
        if verdict.allowed:
            return True
        self.audit_refusal(user, channel, action, verdict.reason,
                           str(verdict.refusal or "unavailable"), audit_text)
        send(verdict.reason)
        return False

    def audit_refusal(self, user: str, channel: str, action: policy.EntryPoint, reason: str,
                      code: str, text: str | None) -> None:
        try:
            if text is not None:
                self.engine.audit_command(actor=Requester(user, channel), text=text,
                                          outcome="refused",
                                          detail={"refusal": code, "reason": reason})
            else:
                self.engine.audit_refusal(actor=Requester(user, channel), action=action.value,
                                          refusal=code, reason=reason)
        except Exception as e:  # noqa: BLE001 - the DB may be down; the reply says why
            log.warning("could not audit a refusal: %s", type(e).__name__)

    def outcome_of(self, fn: Callable[[], Reply | None], *, refused: Callable[[str], None]
                   ) -> Reply | None:
        """Run engine work; map every failure to a short message, never a stack trace."""
        try:
            return fn()
        except (UsageError, Refused, DirectoryUnavailable) as e:
            refused(e.message)
            return Reply(e.message)
        except DatabaseUnavailable:
            return Reply(DB_DOWN)
        except Exception:
            err = uuid.uuid4().hex[:8]
            log.exception("unexpected error %s", err)
            return Reply(f"Something went wrong on our side (error id `{err}`); nothing more "
                         "was done. The error is in the bot's log under that id.")

    def act(self, action: policy.EntryPoint, user: str, channel: str, send: Callable[[str], Any],
            work: Callable[[], str], *, about_rollback: bool = False, code: str = "engine",
            facts: Facts | None = None) -> None:
        """The shared life of a click or a submission: policy, work, reply (``send``), every
        refusal audited (the engine's under ``code``)."""
        if not self.allowed(action, user, channel, send=send, about_rollback=about_rollback,
                            facts=facts):
            return
        reply = self.outcome_of(lambda: Reply(work()), refused=lambda why: self.audit_refusal(
            user, channel, action, why, code, None))
        if reply is not None:
            send(reply.text)

    # ------------------------------------------------------------ buttons
    def on_click(self, body: Any, action: Any, respond: Callable[..., Any], context: Any,
                 act: policy.EntryPoint, work: Callable[[Click], str], *,
                 about_rollback: Callable[[Click], bool] | None = None,
                 prepare: Callable[[Click], None] | None = None) -> None:
        """A button's lazy half, handled in order through the inbox: read the click, then
        :meth:`act` on it with an ephemeral reply (a malformed click is logged, nothing more).
        Who clicked is looked up in Slack first, outside the inbox transaction, and what the
        click's work needs from slow sources (``prepare``: a Retry's plan part) too, for
        someone the policy lets click it."""
        click = Click.read(body, action)
        facts = self.lookup(act, click.user) if click is not None else None
        if click is not None and facts is not None and prepare is not None:
            self.prepare_if_allowed(act, facts, click.channel, lambda: prepare(click))

        def flow(later: Defer) -> None:
            if click is None:
                return
            self.await_landing(click)
            send = ephemeral(later(respond))
            self.act(act, click.user, click.channel, lambda text: send(text=text),
                     lambda: work(click), facts=facts,
                     about_rollback=about_rollback(click) if about_rollback else False)
        self.in_order(context, field(body, "channel", "id"),
                      lambda text: ephemeral(respond)(text=text), flow)

    def await_landing(self, click: Click, timeout_s: float = LANDING_WAIT_S) -> None:
        """A click can reach us before the sender has committed the ts of the message it is
        on (Slack shows a message as soon as it answered the post). While that post is in
        flight, wait for its ts, so a quick click is not taken for one on a stale card."""
        if not click.message_ts:
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.engine.landing(click.channel, click.message_ts):
                return
            time.sleep(0.05)

    def open_modal(self, client: Any, click: Click, view: dict, *, stale: str = STALE) -> str:
        """Open a modal from a click (its trigger is good for 3 seconds); no reply of its own."""
        if click.trigger_id is None:
            raise Refused(stale)
        try:
            client.views_open(trigger_id=click.trigger_id, view=view)
        except SlackApiError as e:
            if e.response.get("error") in ("expired_trigger_id", "invalid_trigger_id"):
                raise Refused(SLOW_TRIGGER) from None
            raise
        return ""

    # ------------------------------------------------------------ modals
    def submitted(self, context: Any, action: policy.EntryPoint, meta: Metadata, client: Any,
                  work: Callable[[], str], *, about_rollback: bool = False) -> None:
        """A reason modal's lazy half: :meth:`act` in order, the reply an ephemeral message."""
        def say(text: str) -> None:
            client.chat_postEphemeral(channel=meta.channel, user=meta.user, text=text)
        facts = self.lookup(action, meta.user)  # in Slack, before the transaction opens
        self.in_order(context, meta.channel, say, lambda later: self.act(
            action, meta.user, meta.channel, later(say), work, about_rollback=about_rollback,
            facts=facts))

    # ------------------------------------------------------------ acks
    def ack_reason(self, ack: Callable[..., None], view: dict) -> None:
        if not reason_of(view):
            ack(response_action="errors", errors={Block.REASON: "Please give a reason."})
            return
        ack()

    def just_ack(self, ack: Callable[..., None]) -> None:
        ack()

    def settle(self, context: Any) -> None:
        """The lazy half of a request nothing handles: its inbox entry is done, in order."""
        self.in_order(context, None, lambda text: None, lambda later: None)

    def acked_click(self, ack: Callable[..., None], body: Any) -> None:
        ack()  # the reply comes from the lazy half; an empty reply would blank the card


def as_body(reply: Reply) -> dict:
    body: dict[str, Any] = {"text": reply.text,
                            "response_type": "in_channel" if reply.in_channel else "ephemeral"}
    if reply.blocks:
        body["blocks"] = reply.blocks
    return body  # masked on the way out by the respond / client use_masking_client installs


def ephemeral(respond: Callable[..., Any]) -> Callable[..., Any]:
    def send(**body: Any) -> Any:
        if body.get("text"):
            body.update(response_type="ephemeral", replace_original=False)
            return respond(**body)
        return None
    return send
