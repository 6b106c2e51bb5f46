"""/golive go: start or resume the autopilot (bot/autopilot): it asks the engine for every
ungated step whose requirements are met, on the operator's behalf, and for approval of the
reachable gated ones, and stops at a failure, at the canary and before finish."""

from commands.base import Context, Invocation, Reply


def handle(ctx: Context, inv: Invocation) -> Reply:
    if ctx.autopilot is None:
        return Reply("The autopilot does not run in this process; nothing was started.")
    return Reply(ctx.autopilot.go(user_id=ctx.user_id, channel=ctx.channel), in_channel=True)
