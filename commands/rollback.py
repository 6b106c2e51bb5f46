"""/golive rollback [reason]: request the rollback plan, from the cutover or an incident channel.

Where it may be asked and by whom is the policy's (bot/policy.py); the Start rollback button
asks the same engine call under the same rule.
"""

from commands.base import Context, Invocation, Reply


def handle(ctx: Context, inv: Invocation) -> Reply:
    reason = " ".join(inv.words).strip() or "no reason given"
    return Reply(ctx.engine.request_rollback(actor=ctx.actor, reason=reason[:500]))
