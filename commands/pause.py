"""/golive pause: stop the autopilot after the running step (nothing is interrupted)."""

from commands.base import Context, Invocation, Reply


def handle(ctx: Context, inv: Invocation) -> Reply:
    if ctx.autopilot is None:
        return Reply("The autopilot does not run in this process; nothing was paused.")
    return Reply(ctx.autopilot.pause(user_id=ctx.user_id, channel=ctx.channel), in_channel=True)
