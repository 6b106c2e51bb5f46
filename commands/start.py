"""/golive start <rc-tag> [sha]: open a cutover run pinned to a release candidate."""

import re

from bot.slack.blocks import esc
from commands.base import Context, Invocation, Reply, UsageError
from runbook.docker_ref import validate_tag

SHA = re.compile(r"^[0-9a-f]{7,64}$")


def validate(inv: Invocation) -> None:
    if not inv.words or len(inv.words) > 2:
        raise UsageError("Usage: `/golive start &lt;rc-tag&gt; [commit-sha]`")
    try:
        validate_tag(inv.words[0])
    except ValueError as e:
        raise UsageError(f"`{esc(inv.words[0][:80])}` is not a valid image tag: {esc(e)}"
                             ) from None
    if len(inv.words) == 2 and not SHA.match(inv.words[1].lower()):
        raise UsageError("The commit SHA must be 7 to 64 hex characters.")


def handle(ctx: Context, inv: Invocation) -> Reply:
    tag = inv.words[0]
    sha = inv.words[1].lower() if len(inv.words) > 1 else None
    run = ctx.engine.start_run(actor=ctx.actor, rc_tag=tag, rc_sha=sha)
    pin = f" pinned to `{sha[:12]}`" if sha else " (no commit SHA pinned: deploy will not verify it)"
    return Reply(f"<@{ctx.user_id}> started cutover run #{run['id']} for `{tag}`{pin}. "
                 "Next: `/golive preflight`.", in_channel=True)
