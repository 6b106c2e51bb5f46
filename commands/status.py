"""/golive status: the current run, its phase, each step's state and pending approvals."""

from bot.slack.status_blocks import autopilot_line, status_blocks, status_extras
from commands.base import Context, Invocation, Reply


def handle(ctx: Context, inv: Invocation) -> Reply:
    view = ctx.engine.view()
    text, blocks = status_blocks(view)
    line = ctx.canary.status_line(view.run["id"]) if ctx.canary and view else None
    if line:  # the canary's GO / NO-GO with who signed, or what it still waits for
        text += "\n" + line
    watches: list[str] = []
    if view is not None:  # each watch's state (or why it is off), as `/golive watch list`
        from bot.watches.messages import watch_line

        states = ctx.engine.watch_control.states(view.run["id"])
        watches = [watch_line(n, r["state"]) for n, r in states.items()]
    pilot = autopilot_line(ctx.autopilot.status(view.run["id"])) \
        if view is not None and ctx.autopilot is not None else None
    if pilot:  # on (who started it, what it waits for), paused, or why it stopped
        text += "\n" + pilot
    # which config the running bot loaded: its file and content hash
    return Reply(text, [*blocks, *status_extras(canary_line=line, watch_lines=watches,
                                                config_identity=ctx.config.identity(),
                                                autopilot=pilot)])
