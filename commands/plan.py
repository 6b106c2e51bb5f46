"""/golive plan [tag]: the night's plan for the active run's release candidate (or ``tag``).

The plan service (``bot.plan.service``, on the Context) computes it from the real systems,
changing nothing, stores and audits it, and has the channel shown its summary card and the
full Markdown file (in the card's thread, through the outbox). The reply names the digest.
"""

from __future__ import annotations

from commands.base import Context, Invocation, Reply, UsageError
from runbook.docker_ref import validate_tag
from runbook.plan.model import PlanError


def validate(inv: Invocation) -> None:
    if len(inv.words) > 1:
        raise UsageError("`/golive plan` takes at most one word: a release tag, e.g. "
                         "`/golive plan v2` (default: the active run's).")
    if inv.words:
        try:
            validate_tag(inv.words[0])
        except ValueError as e:
            raise UsageError(f"`/golive plan`: {e}") from None


def prepare(ctx: Context, inv: Invocation) -> None:
    """Before the request's transaction: the plan itself (seconds of registry, compose,
    database and RC-image reads), kept for ``handle``; a failure is ``handle``'s to meet."""
    if ctx.plan is not None:
        ctx.plan.prepare(rc_tag=inv.words[0] if inv.words else None)


def handle(ctx: Context, inv: Invocation) -> Reply:
    if ctx.plan is None:
        return Reply("The plan is not available in this bot (no plan service configured).")
    try:
        stored = ctx.plan.plan_for(actor=ctx.user_id, channel=ctx.channel,
                                   rc_tag=inv.words[0] if inv.words else None)
    except PlanError as e:
        return Reply(str(e))
    unresolved = len(stored.plan.all_unresolved())
    return Reply(f"Plan for {stored.plan.rc_tag}: digest `{stored.digest}`"
                 + (f", {unresolved} item(s) not resolved" if unresolved else "")
                 + f". The summary card and `{stored.filename}` follow in the channel.")
