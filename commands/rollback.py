"""/golive rollback [reason]: request the rollback plan, from the cutover or an incident channel."""

from commands.base import Context, Invocation, Reply, UsageError


def handle(ctx: Context, inv: Invocation) -> Reply:
    allowed = {ctx.config.channels.cutover, *ctx.config.channels.incident}
    if ctx.channel not in allowed:
        raise UsageError("Rollback can be requested from the cutover channel or an incident "
                         "channel only.")
    reason = " ".join(inv.words).strip() or "no reason given"
    return Reply(ctx.engine.request_rollback(actor=ctx.actor, reason=reason[:500]))
