"""/golive status: the current run, its phase, each step's state and pending approvals."""

from bot.slack.blocks import status_blocks
from commands.base import Context, Invocation, Reply


def handle(ctx: Context, inv: Invocation) -> Reply:
    text, blocks = status_blocks(ctx.engine.view())
    return Reply(text, blocks)
