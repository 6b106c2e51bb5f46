"""One table of every /golive subcommand: name, usage, one-line summary, handler."""

from bot.slack.blocks import esc
from commands import finish, help, rollback, start, status, steps
from commands.base import Command, Context, Invocation, Reply, UsageError, tokenize


def no_args(inv: Invocation) -> None:
    if inv.words:
        raise UsageError(f"`/golive {inv.name}` takes no arguments.")


COMMANDS: dict[str, Command] = {c.name: c for c in [
    Command("help", "/golive help", "this list", help.handle),
    Command("status", "/golive status", "where the run stands, what is next, pending approvals",
            status.handle, no_args),
    Command("start", "/golive start &lt;rc-tag&gt; [sha]", "open a cutover run for a release candidate",
            start.handle, start.validate),
    Command("preflight", "/golive preflight",
            "pre-cutover checks: freeze, prod config, backup drill, migration dry run, RC evidence (not built yet: each says so)",
            steps.handle, steps.validate),
    Command("maintenance", "/golive maintenance on|off",
            "switch the maintenance page on or off (verified)", steps.handle, steps.validate,
            gated=True),
    Command("deploy", "/golive deploy &lt;tag&gt;", "pull the images, compose up, wait healthy",
            steps.handle, steps.validate, gated=True),
    Command("migrate", "/golive migrate", "alembic upgrade head on the target database",
            steps.handle, steps.validate),
    Command("health", "/golive health", "check /api/health, admin login and the dashboard",
            steps.handle, steps.validate),
    Command("smoke", "/golive smoke", "run the team's smoke script", steps.handle,
            steps.validate),
    Command("traffic", "/golive traffic open", "re-open public traffic (verified)",
            steps.handle, steps.validate, gated=True),
    Command("canary", "/golive canary", "real-money canary and its threaded sign-off (not built yet)",
            steps.handle, steps.validate),
    Command("watch", "/golive watch", "post-cutover watches: ledger, webhooks, error budget (not built yet)",
            steps.handle, steps.validate),
    Command("rollback", "/golive rollback [reason]",
            "request the rollback plan (also from an incident channel)", rollback.handle,
            gated=True),
    Command("finish", '/golive finish [--abort "reason"]',
            "close the active run (refused while work is open; --abort ends it as aborted)",
            finish.handle, finish.validate),
]}

__all__ = ["COMMANDS", "Command", "Context", "Invocation", "Reply", "UsageError", "parse"]


def parse(text: str) -> tuple[Command, Invocation]:
    """Text after `/golive` -> the command and its arguments; UsageError on anything off."""
    inv = tokenize(text)
    cmd = COMMANDS.get(inv.name)
    if cmd is None:
        raise UsageError(f"Unknown subcommand `{esc(inv.name[:40])}`.")
    if inv.override and not cmd.gated and cmd.name not in ("migrate", "health", "smoke",
                                                           "canary", "watch", "preflight"):
        raise UsageError(f"`/golive {cmd.name}` does not take `--override`.")
    if cmd.validate:
        cmd.validate(inv)
    return cmd, inv
