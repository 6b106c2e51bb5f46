"""/golive watch start|stop|list and /golive incident security <text>.

The watches run on the leader replica (bot/watches/); these commands ask the engine
(``engine.watch_control``, bot/engine/watch_control.py) to record what should run or raise an
alert, audited; the leader and the outbox sender do the rest.
"""

from __future__ import annotations

from bot.slack.blocks import esc
from bot.watches.messages import watch_line
from commands.base import Context, Invocation, Reply, UsageError

ACTIONS = ("start", "stop", "list")


def validate(inv: Invocation) -> None:
    if len(inv.words) > 1 or (inv.words and inv.words[0].lower() not in ACTIONS):
        raise UsageError("Usage: `/golive watch start|stop|list`")


def handle(ctx: Context, inv: Invocation) -> Reply:
    action = inv.words[0].lower() if inv.words else "list"
    watches = ctx.engine.watch_control
    if action == "list":
        view = watches.view()
        return Reply(_list(view.run_id, view.control, view.states))
    want = "running" if action == "start" else "stopped"
    run_id, changed = watches.switch(actor=ctx.actor, want=want,
                                     channel=ctx.config.channels.cutover)
    if not changed:
        return Reply(f"The watches of run #{run_id} are already {want}.")
    if want == "running":
        return Reply(f"Watches starting for run #{run_id}: each gets its message in "
                     "this channel.", in_channel=True)
    return Reply(f"Watches of run #{run_id} stopped by <@{ctx.user_id}>; "
                 "`/golive watch start` resumes them.", in_channel=True)


def _list(run_id: int, ctl: dict | None, states: dict[str, dict]) -> str:
    if ctl is None:
        head = (f"The watches of run #{run_id} have not started: they start when traffic "
                "opens, or with `/golive watch start`.")
    else:
        by = ctl["changed_by"]
        who = f"<@{by}>" if by.startswith(("U", "W")) else esc(by)
        head = f"Watches of run #{run_id}: *{ctl['desired']}* (by {who})."
    return "\n".join([head, *(watch_line(n, r["state"]) for n, r in states.items())])


def validate_incident(inv: Invocation) -> None:
    if len(inv.words) < 2 or inv.words[0].lower() != "security":
        raise UsageError("Usage: `/golive incident security <what happened>`")


def handle_incident(ctx: Context, inv: Invocation) -> Reply:
    """Declare a security incident: an alert with Start rollback in every configured channel."""
    text = " ".join(inv.words[1:]).strip()[:1000]
    channels = [ctx.config.channels.cutover, *ctx.config.channels.incident]
    ctx.engine.watch_control.declare_incident(actor=ctx.actor, text=text, channels=channels)
    where = ", ".join(f"<#{c}>" for c in channels)
    return Reply(f"Security incident declared; the alert with *Start rollback* is posted in "
                 f"{where}.")
