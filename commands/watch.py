"""/golive watch start|stop|list and /golive incident security <text>.

The watches run on the leader replica (bot/watches/); these commands only record what should
run (``watch_control``) or raise an alert, in the command's transaction, and the leader and
the outbox sender do the rest.
"""

from __future__ import annotations

from bot.slack.blocks import esc
from bot.store import repo
from bot.watches import store
from bot.watches.messages import watch_line
from bot.watches.room import raise_alert, watch_key
from commands.base import Context, Invocation, Reply, UsageError

ACTIONS = ("start", "stop", "list")


def validate(inv: Invocation) -> None:
    if len(inv.words) > 1 or (inv.words and inv.words[0].lower() not in ACTIONS):
        raise UsageError("Usage: `/golive watch start|stop|list`")


def handle(ctx: Context, inv: Invocation) -> Reply:
    action = inv.words[0].lower() if inv.words else "list"
    engine, now = ctx.engine, ctx.engine.deps.now()
    with engine.db.transaction() as conn:
        run = repo.active_run(conn)
        if run is None:
            return Reply("There is no active cutover run; the watches run during one.")
        ctl = store.control(conn, run["id"])
        states = store.states(conn, run["id"])
        if action == "list":
            return Reply(_list(run["id"], ctl, states))
        want = "running" if action == "start" else "stopped"
        if ctl is not None and ctl["desired"] == want:
            return Reply(f"The watches of run #{run['id']} are already {want}.")
        store.set_control(conn, run_id=run["id"], desired=want, by=ctx.user_id, now=now)
        for name in states:  # their messages say they stopped (or no longer do)
            engine.deps.outbox.touch(conn, key=watch_key(run["id"], name),
                                     channel=ctx.config.channels.cutover)
    if want == "running":
        return Reply(f"Watches starting for run #{run['id']}: each gets its message in "
                     "this channel.", in_channel=True)
    return Reply(f"Watches of run #{run['id']} stopped by <@{ctx.user_id}>; "
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
    engine, now = ctx.engine, ctx.engine.deps.now()
    channels = [ctx.config.channels.cutover, *ctx.config.channels.incident]
    with engine.db.transaction() as conn:
        run = repo.active_run(conn) or repo.latest_run(conn)
        raise_alert(conn, engine.deps.outbox, channels=channels,
                    run_id=run["id"] if run else None, kind="security_incident", watch=None,
                    text=text, evidence={"declared_by": ctx.user_id,
                                         "declared_in": ctx.channel,
                                         "at": now.isoformat(),
                                         "run": run["id"] if run else None},
                    by=ctx.user_id, now=now)
    where = ", ".join(f"<#{c}>" for c in channels)
    return Reply(f"Security incident declared; the alert with *Start rollback* is posted in "
                 f"{where}.")
