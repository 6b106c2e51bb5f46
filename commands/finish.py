"""/golive finish [--abort "reason"]: close the active run.

Refused while an approval is pending or a step is queued or running; ``--abort`` ends the run
as ``aborted`` instead, cancelling what is queued and voiding pending approvals.
"""

from bot.slack.blocks import esc
from bot.slack.status_blocks import finish_blocks
from commands.base import Context, Invocation, Reply, UsageError

USAGE = 'Usage: `/golive finish` or `/golive finish --abort "reason"`'
OUTCOMES = {"completed": "completed", "incomplete": "incomplete", "aborted": "aborted",
            "rolled_back": "rolled back"}


def abort_reason(inv: Invocation) -> str | None:
    """The ``--abort`` reason, None without the flag; UsageError when it is off."""
    words = list(inv.words)
    if not words:
        return None
    if words[0].startswith("--abort="):
        words = ["--abort", words[0].split("=", 1)[1], *words[1:]]
    if words[0] != "--abort" or len(words) != 2 or not words[1].strip():
        raise UsageError(USAGE + ": `--abort` needs one quoted reason.")
    return words[1].strip()[:500]


def left_as_is(left: dict) -> list[str]:
    """What an aborted run leaves on the stack (aborting undoes nothing), as warnings."""
    out = []
    if left.get("maintenance"):
        out.append("⚠️ Maintenance is still ON: the public keeps seeing the maintenance page "
                   "until someone turns it off (aborting does not).")
    if left.get("release"):
        out.append(f"⚠️ The new release `{esc(str(left['release']))}` is still deployed: "
                   "aborting does not roll it back (`/golive rollback` does).")
    if out:
        state = " and ".join(w for w, on in (("maintenance on", left.get("maintenance")),
                                            (f"`{esc(str(left.get('release')))}` deployed",
                                             left.get("release"))) if on)
        out.append(f"The stack is left as it is: {state}.")
    return out


def validate(inv: Invocation) -> None:
    abort_reason(inv)


def handle(ctx: Context, inv: Invocation) -> Reply:
    reason = abort_reason(inv)
    run = ctx.engine.finish_run(actor=ctx.actor, abort=reason)
    lines = [f"<@{ctx.user_id}> closed run #{run['id']}: {OUTCOMES.get(run['status'], run['status'])}"
             + (f" — {esc(reason)}" if reason else "") + "."]
    if run["status"] != "completed" and run["not_run"]:
        lines.append("Did not run: " + ", ".join(f"`{s}`" for s in run["not_run"]) + ".")
    if run["voided"]:
        lines.append("Void: " + ", ".join(esc(a) for a in run["voided"]) + ".")
    if reason:
        lines += left_as_is(run.get("left") or {})
    lines.append(f"Audit chain head after {run['audit_rows']} rows: `{run['audit_head']}` (keep "
                 "it: `golive audit verify --head &lt;hash&gt;` checks the log against it).")
    text = "\n".join(lines)
    # The short head on the card is an anchor `golive audit verify --head` accepts.
    return Reply(text, blocks=finish_blocks(text, audit_rows=run["audit_rows"],
                                            audit_head=run["audit_head"]), in_channel=True)
