"""build_app: the Bolt app, its listeners (one small function each, registered from one table)
and its error handling.

Listeners ack at once (process_before_response + lazy listeners): the ack never waits on the
database, Docker or Slack. The lazy half asks the policy (runbook/rules/policy.py) whether this person
may do this here, and only then parses again, calls the engine and replies. Every refusal is
an ephemeral reply and an audit row with its reason. Payloads are read defensively: a
malformed one is acked, logged in one line and otherwise ignored (bot/slack/payloads.py).
That shared life of a listener is ``bot.listeners.ListenerBase``; this module holds the
listeners of the core phases and the table, each phase's mixin adds its own
(``bot/canary/listeners.py``).
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from typing import Any

from slack_bolt import App
from slack_bolt.authorization import AuthorizeResult

from bot import ingress
from bot.canary.listeners import CANARY_TABLE, CanaryListeners
from bot.decision_listeners import DECISION_TABLE, DecisionListeners
from bot.engine import ROLLBACK, Engine, Refused, Requester
from bot.ids import Action, Callback
from bot.inbox import Inbox
from bot.listeners import DB_DOWN, STALE, Facts, as_body
from bot.slack.blocks import reason_modal
from bot.slack.client import mask_payload, use_masking_client
from bot.slack.directory import Directory
from bot.slack.payloads import Click, Metadata, field, reason_of
from bot.store.db import DatabaseUnavailable
from commands import Context, UsageError, build_commands, parse
from commands.base import Command, Invocation
from runbook.rules import approvals, policy

log = logging.getLogger(__name__)
REQUEST = "golive_request"
"""The context key of a command's ``ingress.CommandRequest`` (bot/door.py, bot/handoff.py)."""


class _StartupNoise(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN from the environment itself and then warns that it will not
    use it (we give it a client and an authorize function). True, and not worth a warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not msg.startswith(("As you gave `client` as well",
                                   "As `installation_store` or `authorize` has been used"))


BOLT_LOG = logging.getLogger("golive.bolt")
BOLT_LOG.addFilter(_StartupNoise())


class Listeners(CanaryListeners, DecisionListeners):
    """Every listener, as a method; :data:`TABLE` says which Slack event each one serves."""

    plan: Any = None  # bot.plan.service.PlanService (None: /golive plan says so)

    autopilot: Any = None  # bot.autopilot.Autopilot (None: /golive go and pause say so)

    def __init__(self, *, engine: Engine, config: Any, operators: Directory,
                 operator_users: frozenset[str], inbox: Inbox):
        self.engine = engine
        self.rules = policy.Rules(cutover=config.channels.cutover,
                                  incident=frozenset(config.channels.incident))
        # once: parse runs in the ack path; help says where the subcommands work
        self.commands = build_commands(engine.runbook, rules=self.rules)
        self.inbox = inbox
        self.config = config
        self.operators = operators
        self.operator_users = operator_users

    def about_rollback(self, approval_id: int) -> bool:
        """Whether an approval card is a rollback request's (those live in incident channels
        too); an unknown id is not, and the engine refuses it."""
        try:
            a = self.engine.approval(approval_id)
        except DatabaseUnavailable:
            return False
        return bool(a and a["step_id"] == ROLLBACK)

    # ------------------------------------------------------------ /golive
    def parsed(self, command: dict, context: Any) -> tuple[Command, Invocation]:
        """The command as the door parsed it, once (``ingress.CommandRequest``, in the context
        and with the inbox row); parsed here only when none came with it. Raises UsageError
        as ``parse`` does."""
        text = field(command, "text") or ""
        request = context.get(REQUEST) if isinstance(context, dict) else None
        if isinstance(request, ingress.CommandRequest) and request.text == text:
            if request.invocation is None:
                raise UsageError(request.problem or "That is not a /golive command.")
            cmd = self.commands.get(request.invocation.name)
            if cmd is not None:
                return cmd, request.invocation
        return parse(text, self.commands)

    def ack_command(self, ack: Callable[..., None], command: dict, context: Any) -> None:
        try:
            cmd, inv = self.parsed(command, context)
        except UsageError as e:
            ack(**mask_payload({"response_type": "ephemeral", "text":
                                f"{e.message}\n`/golive help` lists every subcommand and its "
                                "usage."}, self.engine.secrets))
            return
        if cmd.name == "help":  # pure and static: answered here, never waiting on anything
            verdict = policy.decide(
                action=policy.EntryPoint.HELP, actor=policy.ActorFacts(approvals.Actor(
                    field(command, "user_id") or "")), channel=field(command, "channel_id") or "",
                rules=self.rules)
            body = as_body(cmd.handler(None, inv)) if verdict.allowed else {
                "response_type": "ephemeral", "text": verdict.reason}
            ack(**mask_payload(body, self.engine.secrets))
            return
        ack()

    def run_command(self, command: dict, respond: Callable[..., Any], context: Any) -> None:
        channel = field(command, "channel_id")
        words = (field(command, "text") or "").split()
        # What changes nothing need not queue behind the channel's earlier requests: at 50
        # status commands a second in one channel, queueing made them one at a time.
        order_in = None if not words or words[0].lower() in ingress.READ_ONLY else channel
        # As the door parsed it; who typed it looked up in Slack before the transaction opens.
        user = field(command, "user_id")
        try:
            parsed: tuple[Any, Any] | UsageError = self.parsed(command, context)
        except UsageError as e:
            parsed = e
        facts = None
        if user is not None and not isinstance(parsed, UsageError):
            action = policy.command_action(parsed[0].name, runbook_step=parsed[0].from_runbook)
            if action is not None:
                facts = self.lookup(action, user)
                cmd, inv = parsed
                if cmd.prepare is not None:  # a plan (part): before the transaction
                    self.prepare_if_allowed(action, facts, channel or "", lambda: cmd.prepare(
                        self.context(user, channel or ""), inv))
        self.in_order(context, order_in,
                      lambda text: respond(text=text, response_type="ephemeral"),
                      lambda later: self.command(command, later(respond), parsed, facts))

    def context(self, user: str, channel: str) -> Context:
        """What a command's handler (and its ``prepare``) may use."""
        return Context(engine=self.engine, user_id=user, channel=channel, config=self.config,
                       plan=self.plan, canary=self.canary, autopilot=self.autopilot)

    def command(self, command: dict, respond: Callable[..., Any],
                parsed: tuple[Any, Any] | UsageError, facts: Facts | None) -> None:
        text = field(command, "text") or ""
        user, channel = field(command, "user_id"), field(command, "channel_id")
        if user is None or channel is None:
            log.warning("ignored a slash command without a user or channel")
            return
        if isinstance(parsed, UsageError):
            e = parsed
            try:
                self.engine.audit_command(actor=Requester(user, channel), text=text,
                                          outcome="usage_error", detail={"reason": e.message})
            except Exception as err:  # noqa: BLE001 - the DB may be down
                log.warning("could not audit command: %s", type(err).__name__)
            return  # already answered in the ack
        cmd, inv = parsed
        action = policy.command_action(cmd.name, runbook_step=cmd.from_runbook)
        assert action is not None, f"/golive {cmd.name} has no policy action"
        answered = action is policy.EntryPoint.HELP  # in the ack (ack_command): only record it
        if not self.allowed(action, user, channel, audit_text=text, facts=facts,
                            what=f"`/golive {cmd.name}`" if cmd.from_runbook else None,
                            send=lambda why: None if answered else respond(
                                text=why, response_type="ephemeral")):
            return
        ctx = self.context(user, channel)
        refusal: list[str] = []
        reply = None if answered else self.outcome_of(lambda: cmd.handler(ctx, inv),
                                                      refused=refusal.append)
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
    def vote(self, kind: str, act: policy.EntryPoint, body: dict, action: dict,
             respond: Callable[..., Any], context: Any) -> None:
        self.on_click(body, action, respond, context, act, lambda click: self.engine.click(
            approval_id=click.value, kind=kind, user_id=click.user, channel=click.channel,
            message_ts=click.message_ts).message, about_rollback=lambda c: self.about_rollback(c.value))

    def approve(self, body: dict, action: dict, respond: Callable[..., Any], context: Any
                ) -> None:
        self.vote("approve", policy.EntryPoint.APPROVE, body, action, respond, context)

    def cancel(self, body: dict, action: dict, respond: Callable[..., Any], context: Any
               ) -> None:
        self.vote("cancel", policy.EntryPoint.CANCEL, body, action, respond, context)

    def reject(self, body: dict, action: dict, respond: Callable[..., Any], client: Any,
               context: Any) -> None:
        self.on_click(body, action, respond, context, policy.EntryPoint.REJECT,
                      lambda click: self.open_reason(client, click, Callback.REJECT_REASON,
                                                     "Reject request",
                                                     "Why are you rejecting this?"),
                      about_rollback=lambda c: self.about_rollback(c.value))

    def reject_submitted(self, body: dict, view: dict, client: Any, context: Any) -> None:
        meta = Metadata.read(body, view)
        if meta is None:
            return
        self.submitted(context, policy.EntryPoint.REJECT_SUBMIT, meta, client, lambda: self.engine.click(
            approval_id=meta.value, kind="reject", user_id=meta.user, channel=meta.channel,
            reason=reason_of(view), message_ts=meta.message_ts).message,
            about_rollback=self.about_rollback(meta.value))

    # ------------------------------------------------------------ interrupted steps
    def retry(self, body: dict, action: dict, respond: Callable[..., Any], context: Any
              ) -> None:
        self.on_click(body, action, respond, context, policy.EntryPoint.RETRY,
                      lambda click: self.engine.retry(execution_id=click.value,
                                                      user_id=click.user, channel=click.channel),
                      prepare=lambda click: self.engine.prepare_retry(click.value))

    def mark_done(self, body: dict, action: dict, respond: Callable[..., Any], client: Any,
                  context: Any) -> None:
        self.on_click(body, action, respond, context, policy.EntryPoint.MARK_DONE,
                      lambda click: self.open_reason(client, click, Callback.MARK_DONE_REASON,
                                                     "Mark step done",
                                                     "Why can this step be treated as done?"))

    def mark_done_submitted(self, body: dict, view: dict, client: Any, context: Any) -> None:
        meta = Metadata.read(body, view)
        if meta is not None:
            self.submitted(context, policy.EntryPoint.MARK_DONE_SUBMIT, meta, client,
                           lambda: self.engine.mark_done(
                               execution_id=meta.value, user_id=meta.user,
                               channel=meta.channel, reason=reason_of(view)))

    def start_rollback(self, body: dict, action: dict, respond: Callable[..., Any],
                       context: Any) -> None:
        self.on_click(body, action, respond, context, policy.EntryPoint.START_ROLLBACK,
                      lambda click: self.engine.request_rollback(
                          actor=Requester(click.user, click.channel),
                          reason=f"step interrupted (execution {click.value})"))

    def alert_rollback(self, body: dict, action: dict, respond: Callable[..., Any],
                       context: Any) -> None:
        """Start rollback on a watch alert: the same action and engine call as the command."""
        self.on_click(body, action, respond, context, policy.EntryPoint.START_ROLLBACK,
                      self.rollback_from_alert)

    def rollback_from_alert(self, click: Click) -> str:
        reason = self.engine.alert_reason(click.value)
        if reason is None:
            raise Refused(STALE)
        return self.engine.request_rollback(actor=Requester(click.user, click.channel),
                                            reason=reason)

    def open_reason(self, client: Any, click: Click, callback: str, title: str,
                    label: str) -> str:
        return self.open_modal(client, click, reason_modal(
            callback_id=callback, title=title, label=label, private_metadata=Metadata.of(click)))


ANY = re.compile(".*")
# kind, id, ack, lazy: every Slack event the bot serves, and the listener for each.
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
    *DECISION_TABLE,
    # Anything else Slack sends (unknown actions, views): ack, never a 404 to Slack; its
    # inbox entry is done at once.
    ("action", ANY, "just_ack", "settle"),
    ("view", ANY, "just_ack", "settle"),
]


def settled(inbox: Inbox, half: Callable[..., None]) -> Callable[..., None]:
    """A lazy half that, however it ends (a malformed payload returns before the inbox, an
    error), leaves no claimed request behind: one it never handled is done as it is."""
    @functools.wraps(half)  # Bolt reads the wrapped function's parameters to pass them
    def run(**kwargs: Any) -> None:
        try:
            half(**kwargs)
        finally:
            context = kwargs.get("context")
            inbox_id = context.get("inbox_id") if isinstance(context, dict) else None
            if inbox_id is not None:
                inbox.settle_unhandled(inbox_id)
    return run


def build_app(*, settings: Any, engine: Engine, client: Any, secrets: dict[str, str],
              inbox: Inbox, canary: Any = None, plan: Any = None,
              lazy: bool = True,
              autopilot: Any = None) -> App:
    """The Bolt app for one process; nothing is created at import time. ``lazy=False``: the
    door's app (bot/door.py, for HTTP and Socket Mode), which only acks; ``lazy=True``: the
    work side's (bot/handoff.py), which only runs the lazy halves."""
    def authorize(**_: Any) -> AuthorizeResult:
        # Single-workspace bot: no auth.test round trip on the request path.
        return AuthorizeResult(enterprise_id=None, team_id=None, bot_token=settings.bot_token,
                               bot_user_id=None, bot_id=None)

    app = App(signing_secret=settings.signing_secret, client=client, authorize=authorize,
              # The door verified the signature (bot/server.py; Socket Mode has none): the
              # work side trusts the inbox row, which only the door can write.
              process_before_response=True, request_verification_enabled=False,
              token_verification_enabled=False, ignoring_self_events_enabled=False,
              logger=BOLT_LOG)
    app.use(use_masking_client(client))  # listeners' client and respond: masked and metered
    config = settings.config
    ops = config.effective_operators()
    listeners = Listeners(engine=engine, config=config,
                          operators=Directory(client, groups={g: g for g in ops.groups}),
                          operator_users=frozenset(ops.users), inbox=inbox)
    listeners.canary = canary  # bot.canary.room.CanaryRoom (None: /golive canary says so)
    listeners.plan = plan  # bot.plan.service.PlanService (None: /golive plan says so)
    listeners.autopilot = autopilot
    for kind, id_, ack, half in TABLE:
        register = getattr(app, kind)(id_)
        # The ack half runs once, at the door; the work side's acks go nowhere.
        register(ack=listeners.just_ack if lazy else getattr(listeners, ack),
                 lazy=[settled(inbox, getattr(listeners, half))] if half and lazy else [])

    @app.error
    def on_error(error: Exception, body: Any) -> None:
        log.error("unhandled listener error: %s", type(error).__name__)

    return app
