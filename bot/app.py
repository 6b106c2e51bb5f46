"""build_app: the Bolt app, its listeners and its error handling.

Listeners ack at once (process_before_response + lazy listeners): the ack never waits on the
database, Docker or Slack. The lazy half parses again, calls the engine, and replies.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from typing import Any

from slack_bolt import App
from slack_bolt.authorization import AuthorizeResult

from bot.engine import Engine, Refused
from bot.ids import Action, Block, Callback
from bot.slack.blocks import reason_modal
from bot.slack.client import mask_payload
from bot.store.db import DatabaseUnavailable
from commands import Context, Reply, UsageError, parse
from commands.help import render_help

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


def build_app(*, settings: Any, engine: Engine, client: Any, secrets: dict[str, str]) -> App:
    """The Bolt app for one process; nothing is created at import time."""
    from commands import COMMANDS

    bot_user = {"id": None}

    def authorize(**_: Any) -> AuthorizeResult:
        # Single-workspace bot: no auth.test round trip on the request path.
        return AuthorizeResult(enterprise_id=None, team_id=None, bot_token=settings.bot_token,
                               bot_user_id=bot_user["id"], bot_id=None)

    app = App(signing_secret=settings.signing_secret, client=client, authorize=authorize,
              process_before_response=True, request_verification_enabled=True,
              token_verification_enabled=False, ignoring_self_events_enabled=False,
              logger=BOLT_LOG)
    config = settings.config

    def masked(reply: Reply) -> dict:
        body: dict[str, Any] = {"text": reply.text,
                                "response_type": "in_channel" if reply.in_channel
                                else "ephemeral"}
        if reply.blocks:
            body["blocks"] = reply.blocks
        return mask_payload(body, secrets)

    def usage_reply(message: str) -> dict:
        text = f"{message}\n\n{render_help(COMMANDS.values())}"
        return mask_payload({"response_type": "ephemeral", "text": text}, secrets)

    def guarded(fn: Callable[[], Reply | None], respond: Callable[..., Any]) -> None:
        """Run engine work and send its reply."""
        reply = outcome_of(fn)
        if reply is not None:
            respond(**masked(reply))

    def outcome_of(fn: Callable[[], Reply | None]) -> Reply | None:
        """Run engine work; map every failure to a short message, never a stack trace."""
        try:
            return fn()
        except (UsageError, Refused) as e:
            return Reply(e.message)
        except DatabaseUnavailable:
            return Reply(DB_DOWN)
        except Exception:
            err = uuid.uuid4().hex[:8]
            log.exception("unexpected error %s", err)
            return Reply(f"Something went wrong on our side (error id `{err}`); nothing more "
                         "was done. The error is in the bot's log under that id.")

    # ---------------------------------------------------------------- /golive
    def ack_command(ack: Callable[..., None], command: dict) -> None:
        try:
            parse(command.get("text") or "")
        except UsageError as e:
            ack(**usage_reply(e.message))
            return
        ack()

    def run_command(command: dict, respond: Callable[..., Any]) -> None:
        text = command.get("text") or ""
        ctx = Context(engine=engine, user_id=command["user_id"],
                      channel=command["channel_id"], config=config)
        outcome = {"value": "ok"}

        def work() -> Reply | None:
            try:
                cmd, inv = parse(text)
            except UsageError:
                outcome["value"] = "usage_error"
                return None  # already answered in the ack
            try:
                return cmd.handler(ctx, inv)
            except (UsageError, Refused) as e:
                outcome["value"] = "refused"
                return Reply(e.message)

        reply = outcome_of(work)
        if reply is not None and reply.text == DB_DOWN:
            # Nothing was done; waiting on the database again would only delay the answer.
            log.warning("command not audited (database down): %s by %s", text[:80],
                        ctx.user_id)
        else:
            try:  # audit before replying: an answered command is a recorded command
                engine.audit_command(actor=ctx.actor, text=text, outcome=outcome["value"])
            except Exception as e:  # noqa: BLE001 - the DB may be down; the reply says so
                log.warning("could not audit command: %s", type(e).__name__)
        if reply is not None:
            respond(**masked(reply))

    app.command("/golive")(ack=ack_command, lazy=[run_command])

    # ---------------------------------------------------------------- buttons
    def just_ack(ack: Callable[..., None]) -> None:
        ack()

    def ephemeral(respond: Callable[..., Any]) -> Callable[..., Any]:
        def send(**body: Any) -> Any:
            body.update(response_type="ephemeral", replace_original=False)
            return respond(**body)
        return send

    def on_vote(kind: str):
        def lazy(body: dict, action: dict, respond: Callable[..., Any]) -> None:
            def work() -> Reply:
                decision = engine.click(approval_id=int(action["value"]), kind=kind,
                                        user_id=body["user"]["id"],
                                        channel=body["channel"]["id"])
                return Reply(decision.message)
            guarded(work, ephemeral(respond))
        return lazy

    app.action(Action.APPROVE)(ack=just_ack, lazy=[on_vote("approve")])
    app.action(Action.CANCEL)(ack=just_ack, lazy=[on_vote("cancel")])

    def open_reason(callback: str, title: str, label: str):
        def ack_and_open(ack: Callable[..., None], body: dict, action: dict,
                         client: Any) -> None:
            ack()
            meta = f"{action['value']}|{body['channel']['id']}"
            try:
                client.views_open(trigger_id=body["trigger_id"], view=reason_modal(
                    callback_id=callback, title=title, label=label, private_metadata=meta))
            except Exception as e:  # noqa: BLE001 - error boundary
                log.warning("views.open failed: %s", e)
        return ack_and_open

    app.action(Action.REJECT)(open_reason(Callback.REJECT_REASON, "Reject request",
                                          "Why are you rejecting this?"))
    app.action(Action.MARK_DONE)(open_reason(Callback.MARK_DONE_REASON, "Mark step done",
                                             "Why can this step be treated as done?"))

    def reason_of(view: dict) -> str:
        values = view.get("state", {}).get("values", {})
        return (values.get(Block.REASON, {}).get(Block.REASON_INPUT, {}).get("value") or "").strip()

    def ack_reason(ack: Callable[..., None], view: dict) -> None:
        if not reason_of(view):
            ack(response_action="errors", errors={Block.REASON: "Please give a reason."})
            return
        ack()

    def on_reject_reason(body: dict, view: dict, client: Any) -> None:
        approval_id, channel = view["private_metadata"].split("|", 1)
        user = body["user"]["id"]

        def work() -> Reply:
            d = engine.click(approval_id=int(approval_id), kind="reject", user_id=user,
                             channel=channel, reason=reason_of(view))
            return Reply(d.message)
        guarded(work, lambda **b: client.chat_postEphemeral(channel=channel, user=user,
                                                            text=b["text"]))

    def on_mark_done_reason(body: dict, view: dict, client: Any) -> None:
        exe_id, channel = view["private_metadata"].split("|", 1)
        user = body["user"]["id"]
        guarded(lambda: Reply(engine.mark_done(execution_id=int(exe_id), user_id=user,
                                               channel=channel, reason=reason_of(view))),
                lambda **b: client.chat_postEphemeral(channel=channel, user=user,
                                                      text=b["text"]))

    app.view(Callback.REJECT_REASON)(ack=ack_reason, lazy=[on_reject_reason])
    app.view(Callback.MARK_DONE_REASON)(ack=ack_reason, lazy=[on_mark_done_reason])

    def on_retry(body: dict, action: dict, respond: Callable[..., Any]) -> None:
        guarded(lambda: Reply(engine.retry(execution_id=int(action["value"]),
                                           user_id=body["user"]["id"],
                                           channel=body["channel"]["id"])), ephemeral(respond))

    def on_start_rollback(body: dict, action: dict, respond: Callable[..., Any]) -> None:
        from bot.engine import Actor

        guarded(lambda: Reply(engine.request_rollback(
            actor=Actor(body["user"]["id"], body["channel"]["id"]),
            reason=f"step interrupted (execution {action['value']})")), ephemeral(respond))

    app.action(Action.RETRY)(ack=just_ack, lazy=[on_retry])
    app.action(Action.START_ROLLBACK)(ack=just_ack, lazy=[on_start_rollback])

    # Anything else Slack sends (unknown actions, stray events): ack, never a 404 to Slack.
    app.action(re.compile(".*"))(just_ack)

    @app.error
    def on_error(error: Exception, body: dict) -> None:
        log.error("unhandled listener error: %s", type(error).__name__)

    return app
