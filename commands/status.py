"""/golive status: the current run, its phase, each step's state and pending approvals."""

from bot.slack.blocks import esc
from bot.slack.status_blocks import status_blocks
from commands.base import Context, Invocation, Reply


def handle(ctx: Context, inv: Invocation) -> Reply:
    view = ctx.engine.view()
    text, blocks = status_blocks(view)
    line = ctx.canary.status_line(view.run["id"]) if ctx.canary and view else None
    if line:  # the canary's GO / NO-GO with who signed, or what it still waits for
        text += "\n" + line
        blocks = [*blocks, {"type": "section", "text": {"type": "mrkdwn", "text": line[:2900]}}]
    if view is not None:  # each watch's state (or why it is off), as `/golive watch list`
        from bot.watches.messages import watch_line

        states = ctx.engine.watch_control.states(view.run["id"])
        if states:
            lines = "\n".join(watch_line(n, r["state"]) for n, r in states.items())
            blocks = [*blocks, {"type": "section", "text": {
                "type": "mrkdwn", "text": f"*Watches*\n{lines}"[:2900]}}]
    identity = ctx.config.identity()
    if identity:  # which config the running bot loaded: its file and content hash
        blocks = [*blocks, {"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"Config: `{esc(identity)}`"[:2900]}]}]
    return Reply(text, blocks)
