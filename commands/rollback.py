"""/golive rollback [--restore|--downgrade] [reason], or with --break-glass "reason"
[--trigger security|ledger]: request the rollback plan, from the cutover or an incident channel.

Where it may be asked and by whom is the policy's (runbook/rules/policy.py); the Start rollback button
asks the same engine call under the same rule. Whether break-glass is allowed is the engine's
(``runbook.break_glass``): one person, a mandatory reason, listed triggers only.
"""

from __future__ import annotations

from commands.base import Context, Invocation, Reply, UsageError

DEFAULT_TRIGGER = "security"
"""Break-glass without --trigger is taken as a declared security incident (audited as such)."""


def options(inv: Invocation) -> tuple[str | None, str | None, str | None, str]:
    """(strategy, break-glass reason or None, trigger, reason) from the command's words."""
    strategy = glass = trigger = None
    rest: list[str] = []
    words = list(inv.words)
    while words:
        w = words.pop(0)
        if w in ("--restore", "--downgrade"):
            if strategy and strategy != w[2:]:
                raise UsageError("Choose one database strategy: `--restore` or `--downgrade`.")
            strategy = w[2:]
        elif w == "--break-glass":
            # The reason was left out when a flag follows: the engine says it is mandatory.
            glass = words.pop(0) if words and not words[0].startswith("--") else ""
        elif w == "--trigger":
            trigger = (words.pop(0) if words else "").strip().lower()
            if not trigger or trigger.startswith("--"):
                raise UsageError("`--trigger` needs a trigger: `--trigger security` or "
                                 "`--trigger ledger`.")
        elif w.startswith("--"):
            raise UsageError(f"`/golive rollback` has no option `{w[:40]}`.")
        else:
            rest.append(w)
    if trigger and glass is None:
        raise UsageError("`--trigger` only goes with `--break-glass \"reason\"`.")
    if glass is not None and rest:
        raise UsageError('With `--break-glass`, put the whole reason in quotes: '
                         '`--break-glass "what happened"`.')
    return strategy, glass, trigger, " ".join(rest).strip()


def validate(inv: Invocation) -> None:
    options(inv)


def handle(ctx: Context, inv: Invocation) -> Reply:
    strategy, glass, trigger, reason = options(inv)
    if glass is not None:
        return Reply(ctx.engine.request_rollback(
            actor=ctx.actor, reason=glass.strip()[:500], strategy=strategy,
            break_glass=trigger or DEFAULT_TRIGGER))
    return Reply(ctx.engine.request_rollback(actor=ctx.actor,
                                             reason=(reason or "no reason given")[:500],
                                             strategy=strategy))
