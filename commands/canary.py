"""/golive canary: open the real-money canary's thread (runbook 2C) for the active run.

A code command, not a step the worker runs: the canary lasts as long as people take to move
money and sign, so it must not hold the run's one running step. Its outcome is recorded as the
runbook step ``canary`` (succeeded on GO, failed on NO-GO), so steps that require it wait.
"""

from commands.base import Context, Invocation, Reply, UsageError


def validate(inv: Invocation) -> None:
    if inv.words:
        raise UsageError("`/golive canary` takes no arguments: amounts and the account come "
                         "from the config's `[canary]` table.")


def handle(ctx: Context, inv: Invocation) -> Reply:
    if ctx.canary is None:
        return Reply("The canary is not available in this process.")
    return Reply(ctx.canary.open(ctx.actor))
