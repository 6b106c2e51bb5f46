"""/golive help: every subcommand with a one-line description and its usage."""

from collections.abc import Iterable

from commands.base import Command


def render_help(commands: Iterable[Command], *, where: str = "") -> str:
    """Slack mrkdwn: usages carry their angle brackets escaped (&lt; &gt;), as Slack needs.
    ``where``: where the subcommands work (:func:`runbook.rules.policy.where_text`), last."""
    lines = ["*golive* runs the go-live cutover from this channel. Subcommands:"]
    for c in commands:
        lock = " 🔒" if c.gated else ""
        lines.append(f"• `{c.usage}`{lock} — {c.summary}")
    lines.append("🔒 = needs a second person to approve; you can never approve your own request.")
    if where:
        lines.append(where)
    return "\n".join(lines)
