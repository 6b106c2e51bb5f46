"""The runbook-step subcommands: each asks the engine for the step(s) behind its words.

preflight, maintenance on|off, deploy <tag>, migrate, health, smoke, traffic open, canary, watch.
They differ only in the words they accept, so one handler serves them all.
"""

from bot.slack.blocks import esc
from commands.base import Context, Invocation, Reply, UsageError
from runbook.docker_ref import validate_tag

WORDS = {
    "maintenance": {"on", "off"},
    "traffic": {"open"},
}


def command_key(inv: Invocation) -> str:
    """The runbook `command` this invocation names, e.g. `maintenance on`."""
    if inv.name in WORDS:
        return f"{inv.name} {inv.words[0].lower()}"
    return inv.name


def validate(inv: Invocation) -> None:
    if inv.name in WORDS:
        allowed = WORDS[inv.name]
        if len(inv.words) != 1 or inv.words[0].lower() not in allowed:
            raise UsageError(f"Usage: `/golive {inv.name} {'|'.join(sorted(allowed))}`")
    elif inv.name == "deploy":
        if len(inv.words) != 1:
            raise UsageError("Usage: `/golive deploy &lt;tag&gt;`, e.g. `/golive deploy v2.3.1`")
        try:
            validate_tag(inv.words[0])
        except ValueError as e:
            raise UsageError(f"`{esc(inv.words[0][:80])}` is not a valid image tag: {esc(e)}"
                             ) from None
    elif inv.words:
        raise UsageError(f"`/golive {inv.name}` takes no arguments.")


def handle(ctx: Context, inv: Invocation) -> Reply:
    args = {"tag": inv.words[0]} if inv.name == "deploy" else {}
    lines = ctx.engine.request(actor=ctx.actor, command=command_key(inv), args=args,
                               override=inv.override)
    return Reply("\n".join(lines))
