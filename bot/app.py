"""build_app: the Bolt app, its listeners (one small function each, registered from one table)
and its error handling.

Listeners ack at once (process_before_response + lazy listeners): the ack never waits on the
database, Docker or Slack. The lazy half asks the policy (bot/policy.py) whether this person
may do this here, and only then parses again, calls the engine and replies. Every refusal is
an ephemeral reply and an audit row with its reason. Payloads are read defensively: a
malformed one is acked, logged in one line and otherwise ignored.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt import App
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.errors import SlackApiError

from bot import approvals, policy
from bot.canary.listeners import CANARY_TABLE, CanaryListeners
from bot.engine import ROLLBACK, Actor, Engine, Refused
from bot.ids import Action, Block, Callback
from bot.inbox import Inbox
from bot.inbox import Outcome as InboxOutcome
from bot.slack.blocks import reason_modal
from bot.slack.client import mask_payload, use_masking_client
from bot.slack.directory import Directory, DirectoryUnavailable
from bot.store.db import DatabaseUnavailable
from bot.watches.store import alert_reason
from commands import Context, Reply, UsageError, build_commands, parse

log = logging.getLogger(__name__)


class _StartupNoise(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN from the environment itself and then warns that it will not
    use it (we give it a client and an authorize function). True, and not worth a warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not msg.startswith(("As you gave `client` as well",
                                   "As `installation_store` or `authorize` has been used"))


BOLT_LOG = logging.getLogger("golive.bolt")
BOLT_LOG.addFilter(_StartupNoise())

DB_DOWN = ("The bot's database is not answering, so nothing was changed. "
           "Try again in a moment; `/golive status` shows where things stand.")
STALE = "That card is out of date or was not sent by golive; nothing was done."
SLOW_TRIGGER = ("Slack allows 3 seconds to open the form and the bot was slower this time; "
                "nothing was done. Click the button again.")


def field(body: Any, *path: str) -> str | None:
    """``body[path...]`` as a non-empty string, or None: payloads are never trusted to be
    shaped as documented."""
    node = body
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node if isinstance(node, str) and node else None


def number(text: str | None) -> int | None:
    """A button value or metadata part that must be a database id."""
    return int(text) if text and text.isascii() and text.isdigit() and len(text) < 19 else None


@dataclass(frozen=True)
class Click:
    """What a button click says, checked for shape: who, where, which card, which value."""

    user: str
    channel: str
    message_ts: str | None
    value: int
    trigger_id: str | None

    @classmethod
    def read(cls, body: Any, action: Any) -> Click | None:
        user, value = field(body, "user", "id"), number(field(action, "value"))
        channel = field(body, "channel", "id") or field(body, "container", "channel_id")
        if user is None or channel is None or value is None:
            log.warning("ignored a malformed click on %s", field(action, "action_id"))
            return None
        return cls(user, channel, field(body, "container", "message_ts"), value,
                   field(body, "trigger_id"))


class Listeners(CanaryListeners):
    """Every listener, as a method; :data:`TABLE` says which Slack event each one serves."""

    def __init__(self, *, engine: Engine, config: Any, operators: Directory,
                 operator_users: frozenset[str], inbox: Inbox):
        self.engine = engine
        self.commands = build_commands(engine.runbook)  # once: parse runs in the ack path
        self.inbox = inbox
        self.config = config
        self.rules = policy.Rules(cutover=config.channels.cutover,
                                  incident=frozenset(config.channels.incident))
        self.operators = operators
        self.operator_users = operator_users

    # ------------------------------------------------------------ the inbox
    def in_order(self, context: Any, channel: str | None, say_down: Callable[[str], Any],
                 flow: Callable[[Defer], None]) -> None:
        """Run a lazy half as the one handling of its inbox request (bot/inbox.py): after the
        channel's earlier requests, in one transaction with its "done" mark; its replies
        (wrapped with the ``Defer`` it is given) go out after the commit."""
        inbox_id = context.get("inbox_id") if isinstance(context, dict) else None
        if inbox_id is None:  # help, Socket Mode: nothing recorded to handle in order
            flow(lambda fn: fn)
            return
        held: list[tuple[Callable[..., Any], tuple, dict]] = []

        def later(fn: Callable[..., Any]) -> Callable[..., Any]:
            return lambda *a, **k: held.append((fn, a, k))
        if self.inbox.handle(inbox_id, channel, lambda: flow(later)) is InboxOutcome.FAILED:
            say_down(DB_DOWN)  # nothing it did was committed, whatever it meant to say
            return
        self.engine.wake()  # what it queued is committed only now: the worker may claim it
        for fn, a, k in held:
            fn(*a, **k)

    # ------------------------------------------------------------ policy and replies
    def facts(self, action: policy.Action, user: str) -> policy.ActorFacts:
        """Look up only what the rule for ``action`` needs; a failed group lookup is None."""
        if not policy.needs_account(action):
            return policy.ActorFacts(approvals.Actor(user))
        account = self.engine.deps.directory.actor(user)  # DirectoryUnavailable: refused
        operator: bool | None = False
        if policy.needs_operator(action):
            try:
                operator = user in self.operator_users or any(
                    user in m for m in self.operators.group_members().values())
            except DirectoryUnavailable:
                operator = None
        return policy.ActorFacts(account, operator)

    def allowed(self, action: policy.Action, user: str, channel: str, *,
                send: Callable[[str], Any], about_rollback: bool = False,
                audit_text: str | None = None, what: str | None = None) -> bool:
        """Ask the policy; on a refusal, say why (ephemeral) and audit it."""
        try:
            verdict = policy.decide(action=action, actor=self.facts(action, user),
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

    def audit_refusal(self, user: str, channel: str, action: policy.Action, reason: str,
                      code: str, text: str | None) -> None:
        try:
            if text is not None:
                self.engine.audit_command(actor=Actor(user, channel), text=text,
                                          outcome="refused",
                                          detail={"refusal": code, "reason": reason})
            else:
                self.engine.audit_refusal(actor=Actor(user, channel), action=action.value,
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

    def button(self, action: policy.Action, click: Click, respond: Callable[..., Any],
               work: Callable[[], str], *, about_rollback: bool = False) -> None:
        """The shared life of a button: policy, engine work, ephemeral reply, refusals audited."""
        send = ephemeral(respond)
        if not self.allowed(action, click.user, click.channel, about_rollback=about_rollback,
                            send=lambda text: send(text=text)):
            return
        reply = self.outcome_of(lambda: Reply(work()), refused=lambda why: self.audit_refusal(
            click.user, click.channel, action, why, "engine", None))
        if reply is not None:
            send(text=reply.text)

    def about_rollback(self, approval_id: int) -> bool:
        """Whether an approval card is a rollback request's (those live in incident channels
        too); an unknown id is not, and the engine refuses it."""
        try:
            a = self.engine.approval(approval_id)
        except DatabaseUnavailable:
            return False
        return bool(a and a["step_id"] == ROLLBACK)

    # ------------------------------------------------------------ /golive
    def ack_command(self, ack: Callable[..., None], command: dict) -> None:
        try:
            parse(field(command, "text") or "", self.commands)
        except UsageError as e:
            ack(**mask_payload({"response_type": "ephemeral", "text":
                                f"{e.message}\n`/golive help` lists every subcommand and its "
                                "usage."}, self.engine.deps.secrets))
            return
        ack()

    def run_command(self, command: dict, respond: Callable[..., Any], context: Any) -> None:
        channel = field(command, "channel_id")
        self.in_order(context, channel,
                      lambda text: respond(text=text, response_type="ephemeral"),
                      lambda later: self.command(command, later(respond)))

    def command(self, command: dict, respond: Callable[..., Any]) -> None:
        text = field(command, "text") or ""
        user, channel = field(command, "user_id"), field(command, "channel_id")
        if user is None or channel is None:
            log.warning("ignored a slash command without a user or channel")
            return
        try:
            cmd, inv = parse(text, self.commands)
        except UsageError as e:
            try:
                self.engine.audit_command(actor=Actor(user, channel), text=text,
                                          outcome="usage_error", detail={"reason": e.message})
            except Exception as err:  # noqa: BLE001 - the DB may be down
                log.warning("could not audit command: %s", type(err).__name__)
            return  # already answered in the ack
        action = policy.command_action(cmd.name, runbook_step=cmd.from_runbook)
        assert action is not None, f"/golive {cmd.name} has no policy action"
        if not self.allowed(action, user, channel, audit_text=text,
                            what=f"`/golive {cmd.name}`" if cmd.from_runbook else None,
                            send=lambda why: respond(text=why, response_type="ephemeral")):
            return
        ctx = Context(engine=self.engine, user_id=user, channel=channel, config=self.config,
                      canary=self.canary)
        refusal: list[str] = []
        reply = self.outcome_of(lambda: cmd.handler(ctx, inv), refused=refusal.append)
        if action is policy.Action.HELP and reply is not None:
            # Help changes nothing and needs no database: answer first, then record it.
            respond(**as_body(reply))
            reply = None
        if reply is not None and reply.text == DB_DOWN:
            # Nothing was done; waiting on the database again would only delay the answer.
            log.warning("command not audited (database down): %s by %s", text[:80], user)
        else:
            try:  # audit before replying: an answered command is a recorded command
                self.engine.audit_command(
                    actor=ctx.actor, text=text, outcome="refused" if refusal else "ok",
                    detail={"reason": refusal[0]} if refusal else None)
            except Exception as e:  # noqa: BLE001 - the DB may be down; the reply says so
                log.warning("could not audit command: %s", type(e).__name__)
        if reply is not None:
            respond(**as_body(reply))

    # ------------------------------------------------------------ approval cards
    def vote(self, kind: str, base: policy.Action, body: dict, action: dict,
             respond: Callable[..., Any]) -> None:
        click = Click.read(body, action)
        if click is None:
            return
        self.button(base, click, respond, lambda: self.engine.click(
            approval_id=click.value, kind=kind, user_id=click.user, channel=click.channel,
            message_ts=click.message_ts).message,
            about_rollback=self.about_rollback(click.value))

    def clicked(self, body: Any, respond: Callable[..., Any], context: Any,
                flow: Callable[[Callable[..., Any]], None]) -> None:
        """A button's lazy half, handled in order through the inbox."""
        self.in_order(context, field(body, "channel", "id"),
                      lambda text: ephemeral(respond)(text=text),
                      lambda later: flow(later(respond)))

    def approve(self, body: dict, action: dict, respond: Callable[..., Any], context: Any
                ) -> None:
        self.clicked(body, respond, context, lambda r: self.vote(
            "approve", policy.Action.APPROVE, body, action, r))

    def cancel(self, body: dict, action: dict, respond: Callable[..., Any], context: Any
               ) -> None:
        self.clicked(body, respond, context, lambda r: self.vote(
            "cancel", policy.Action.CANCEL, body, action, r))

    def reject(self, body: dict, action: dict, respond: Callable[..., Any], client: Any,
               context: Any) -> None:
        self.clicked(body, respond, context, lambda r: self.reject_clicked(body, action, r,
                                                                           client))

    def reject_clicked(self, body: dict, action: dict, respond: Callable[..., Any],
                       client: Any) -> None:
        click = Click.read(body, action)
        if click is None:
            return
        self.button(policy.Action.REJECT, click, respond, lambda: self.open_reason(
            client, click, Callback.REJECT_REASON, "Reject request",
            "Why are you rejecting this?"), about_rollback=self.about_rollback(click.value))

    def reject_submitted(self, body: dict, view: dict, client: Any, context: Any) -> None:
        meta = Metadata.read(body, view)
        if meta is None:
            return
        self.submitted(context, policy.Action.REJECT_SUBMIT, meta, client, lambda: self.engine.click(
            approval_id=meta.value, kind="reject", user_id=meta.user, channel=meta.channel,
            reason=reason_of(view), message_ts=meta.message_ts).message,
            about_rollback=self.about_rollback(meta.value))

    # ------------------------------------------------------------ interrupted steps
    def retry(self, body: dict, action: dict, respond: Callable[..., Any], context: Any
              ) -> None:
        click = Click.read(body, action)
        if click is not None:
            self.clicked(body, respond, context, lambda r: self.button(
                policy.Action.RETRY, click, r, lambda: self.engine.retry(
                    execution_id=click.value, user_id=click.user, channel=click.channel)))

    def mark_done(self, body: dict, action: dict, respond: Callable[..., Any], client: Any,
                  context: Any) -> None:
        click = Click.read(body, action)
        if click is not None:
            self.clicked(body, respond, context, lambda r: self.button(
                policy.Action.MARK_DONE, click, r, lambda: self.open_reason(
                    client, click, Callback.MARK_DONE_REASON, "Mark step done",
                    "Why can this step be treated as done?")))

    def mark_done_submitted(self, body: dict, view: dict, client: Any, context: Any) -> None:
        meta = Metadata.read(body, view)
        if meta is not None:
            self.submitted(context, policy.Action.MARK_DONE_SUBMIT, meta, client,
                           lambda: self.engine.mark_done(
                               execution_id=meta.value, user_id=meta.user,
                               channel=meta.channel, reason=reason_of(view)))

    def start_rollback(self, body: dict, action: dict, respond: Callable[..., Any],
                       context: Any) -> None:
        click = Click.read(body, action)
        if click is not None:
            self.clicked(body, respond, context, lambda r: self.button(
                policy.Action.START_ROLLBACK, click, r, lambda: self.engine.request_rollback(
                    actor=Actor(click.user, click.channel),
                    reason=f"step interrupted (execution {click.value})")))

    def alert_rollback(self, body: dict, action: dict, respond: Callable[..., Any],
                       context: Any) -> None:
        """Start rollback on a watch alert: the same action and engine call as the command."""
        click = Click.read(body, action)
        if click is not None:
            self.clicked(body, respond, context, lambda r: self.button(
                policy.Action.START_ROLLBACK, click, r, lambda: self.rollback_from_alert(click)))

    def rollback_from_alert(self, click: Click) -> str:
        reason = alert_reason(self.engine.db, click.value)
        if reason is None:
            raise Refused(STALE)
        return self.engine.request_rollback(actor=Actor(click.user, click.channel),
                                            reason=reason)

    # ------------------------------------------------------------ modals
    def open_reason(self, client: Any, click: Click, callback: str, title: str,
                    label: str) -> str:
        if click.trigger_id is None:
            raise Refused(STALE)
        meta = f"{click.value}|{click.channel}|{click.message_ts or ''}"
        try:
            client.views_open(trigger_id=click.trigger_id, view=reason_modal(
                callback_id=callback, title=title, label=label, private_metadata=meta))
        except SlackApiError as e:
            if e.response.get("error") in ("expired_trigger_id", "invalid_trigger_id"):
                raise Refused(SLOW_TRIGGER) from None
            raise
        return ""

    def submitted(self, context: Any, action: policy.Action, meta: Metadata, client: Any,
                  work: Callable[[], str], *, about_rollback: bool = False) -> None:
        def say(text: str) -> None:
            client.chat_postEphemeral(channel=meta.channel, user=meta.user, text=text)
        self.in_order(context, meta.channel, say, lambda later: self.modal(
            action, meta, later(say), work, about_rollback=about_rollback))

    def modal(self, action: policy.Action, meta: Metadata, send: Callable[[str], Any],
              work: Callable[[], str], *, about_rollback: bool) -> None:
        """A modal submission's lazy half: policy, engine work, ephemeral reply."""
        if not self.allowed(action, meta.user, meta.channel, send=send,
                            about_rollback=about_rollback):
            return
        reply = self.outcome_of(lambda: Reply(work()), refused=lambda why: self.audit_refusal(
            meta.user, meta.channel, action, why, "engine", None))
        if reply is not None:
            send(reply.text)

    def ack_reason(self, ack: Callable[..., None], view: dict) -> None:
        if not reason_of(view):
            ack(response_action="errors", errors={Block.REASON: "Please give a reason."})
            return
        ack()

    def just_ack(self, ack: Callable[..., None]) -> None:
        ack()

    def acked_click(self, ack: Callable[..., None], body: Any) -> None:
        ack()  # the reply comes from the lazy half; an empty reply would blank the card


@dataclass(frozen=True)
class Metadata:
    """A reason modal's submission: who, and what the modal was opened for (our metadata)."""

    user: str
    value: int
    channel: str
    message_ts: str | None

    @classmethod
    def read(cls, body: Any, view: Any) -> Metadata | None:
        user = field(body, "user", "id")
        parts = (field(view, "private_metadata") or "").split("|")
        value = number(parts[0])
        if user is None or value is None or len(parts) < 2 or not parts[1]:
            log.warning("ignored a malformed modal submission")
            return None
        return cls(user, value, parts[1], parts[2] if len(parts) > 2 and parts[2] else None)


def reason_of(view: Any) -> str:
    value = field(view, "state", "values", Block.REASON, Block.REASON_INPUT, "value")
    return value.strip() if isinstance(value, str) else ""


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


ANY = re.compile(".*")
# kind, id, ack, lazy: every Slack event the bot serves, and the listener for each.
Defer = Callable[[Callable[..., Any]], Callable[..., Any]]
"""Wraps a reply function so that its calls go out after the inbox commit."""

TABLE: list[tuple[str, str | re.Pattern[str], str, str | None]] = [
    ("command", "/golive", "ack_command", "run_command"),
    ("action", Action.APPROVE, "acked_click", "approve"),
    ("action", Action.REJECT, "acked_click", "reject"),
    ("action", Action.CANCEL, "acked_click", "cancel"),
    ("action", Action.RETRY, "acked_click", "retry"),
    ("action", Action.MARK_DONE, "acked_click", "mark_done"),
    ("action", Action.START_ROLLBACK, "acked_click", "start_rollback"),
    ("action", Action.ALERT_ROLLBACK, "acked_click", "alert_rollback"),
    ("view", Callback.REJECT_REASON, "ack_reason", "reject_submitted"),
    ("view", Callback.MARK_DONE_REASON, "ack_reason", "mark_done_submitted"),
    *CANARY_TABLE,
    # Anything else Slack sends (unknown actions, views): ack, never a 404 to Slack.
    ("action", ANY, "just_ack", None),
    ("view", ANY, "just_ack", None),
]


def build_app(*, settings: Any, engine: Engine, client: Any, secrets: dict[str, str],
              inbox: Inbox, canary: Any = None) -> App:
    """The Bolt app for one process; nothing is created at import time."""
    def authorize(**_: Any) -> AuthorizeResult:
        # Single-workspace bot: no auth.test round trip on the request path.
        return AuthorizeResult(enterprise_id=None, team_id=None, bot_token=settings.bot_token,
                               bot_user_id=None, bot_id=None)

    app = App(signing_secret=settings.signing_secret, client=client, authorize=authorize,
              process_before_response=True, request_verification_enabled=True,
              token_verification_enabled=False, ignoring_self_events_enabled=False,
              logger=BOLT_LOG)
    app.use(use_masking_client(client))  # listeners' client and respond: masked and metered
    config = settings.config
    ops = config.effective_operators()
    listeners = Listeners(engine=engine, config=config,
                          operators=Directory(client, groups={g: g for g in ops.groups}),
                          operator_users=frozenset(ops.users), inbox=inbox)
    listeners.canary = canary  # bot.canary.room.CanaryRoom (None: /golive canary says so)
    for kind, id_, ack, lazy in TABLE:
        register = getattr(app, kind)(id_)
        register(ack=getattr(listeners, ack),
                 lazy=[getattr(listeners, lazy)] if lazy else [])

    @app.error
    def on_error(error: Exception, body: Any) -> None:
        log.error("unhandled listener error: %s", type(error).__name__)

    return app
