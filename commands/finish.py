"""/golive finish: close the active run (completed, or rolled back)."""

from commands.base import Context, Invocation, Reply


def handle(ctx: Context, inv: Invocation) -> Reply:
    run = ctx.engine.finish_run(actor=ctx.actor)
    return Reply(f"<@{ctx.user_id}> closed run #{run['id']}: {run['status']}. Audit chain head "
                 f"after {run['audit_rows']} rows: `{run['audit_head']}` (keep it: "
                 "`golive audit verify --head &lt;hash&gt;` checks the log against it).",
                 in_channel=True)
