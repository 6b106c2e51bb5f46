"""The /golive subcommands: name, usage, one-line summary, handler.

``help``, ``status``, ``start``, ``go``, ``pause``, ``rollback`` and ``finish`` are code; every
other subcommand comes from the runbook's step commands (:mod:`commands.steps`).
:func:`build_commands` makes the table once at start-up; :func:`parse` (called in the ack path)
only reads it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from bot.slack.blocks import esc
from commands import canary, finish, go, help, pause, rollback, start, status, steps, watch
from commands import plan as plan_command
from commands.base import Command, Context, Invocation, Reply, UsageError, tokenize
from runbook.model import Runbook
from runbook.rules.policy import Rules, where_text


def no_args(inv: Invocation) -> None:
    if inv.words:
        raise UsageError(f"`/golive {inv.name}` takes no arguments.")


BEFORE = [
    Command("status", "/golive status", "where the run stands, what is next, pending approvals",
            status.handle, no_args),
    Command("start", "/golive start &lt;rc-tag&gt; [sha]", "open a cutover run for a release candidate",
            start.handle, start.validate),
    Command("go", "/golive go", "the autopilot: request every step that may run now, ask for "
            "approvals, stop at a failure, the canary and before finish (starts or resumes)",
            go.handle, no_args),
    Command("pause", "/golive pause", "stop the autopilot after the running step (nothing is "
            "interrupted)", pause.handle, no_args),
]
AFTER = [
    Command("plan", "/golive plan [tag]", "the night's plan with today's values: each step, the "
            "digests and SQL it will use, its way back, expected durations, a digest (a card "
            "and the full file)", plan_command.handle, plan_command.validate,
            prepare=plan_command.prepare),
    Command("canary", "/golive canary",
            "real-money canary: deposit, withdraw, ledger and evidence checks, threaded "
            "sign-off and report", canary.handle, canary.validate),
    Command("watch", "/golive watch start|stop|list",
            "the post-cutover watches (they start when traffic opens)", watch.handle,
            watch.validate),
    Command("incident", "/golive incident security &lt;what happened&gt;",
            "declare a security incident: an alert with Start rollback", watch.handle_incident,
            watch.validate_incident),
    Command("rollback", '/golive rollback [--restore|--downgrade] [reason] | --break-glass '
            '"reason" [--trigger security|ledger]',
            "request the rollback plan (also from an incident channel); break-glass: one "
            "person, for listed triggers", rollback.handle, rollback.validate, gated=True),
    Command("finish", '/golive finish [--abort "reason"]',
            "close the active run (refused while work is open; --abort ends it as aborted)",
            finish.handle, finish.validate),
]
RESERVED: dict[str, str | None] = {"help": None, **{c.name: None for c in BEFORE + AFTER},
                                   "rollback": "rollback", "watch": "watch",
                                   "canary": "canary"}
"""Subcommands the bot provides; the runbook's ``rollback`` steps belong to ``rollback``, its
``watch`` steps to ``watch``, its ``canary`` step to ``canary``."""


def _kind_built(kind: str) -> bool:
    from runbook.steps.base import REGISTRY

    return kind in REGISTRY and REGISTRY[kind].available


def build_commands(runbook: Runbook, *, available: Callable[[str], bool] = _kind_built,
                   rules: Rules | None = None) -> dict[str, Command]:
    """Every subcommand, in help order: the code's and the runbook's step commands.
    ``rules``: the configured channels, so help says where the subcommands work.

    Raises RunbookError when a step's command clashes with a subcommand the bot provides.
    ``available(kind)``: whether a step kind is built (default: the step-kind registry).
    """
    table: dict[str, Command] = {}
    where = where_text(rules) if rules is not None else ""
    table["help"] = Command("help", "/golive help", "this list",
                            lambda ctx, inv: Reply(help.render_help(table.values(),
                                                                    where=where)))
    derived = steps.commands(runbook, reserved=RESERVED, available=available)
    table.update({c.name: c for c in [*BEFORE, *derived, *AFTER]})
    return table


__all__ = ["Command", "Context", "Invocation", "Reply", "UsageError", "build_commands", "parse"]


def parse(text: str, commands: Mapping[str, Command]) -> tuple[Command, Invocation]:
    """Text after `/golive` -> the command and its arguments; UsageError on anything off."""
    inv = tokenize(text)
    cmd = commands.get(inv.name)
    if cmd is None:
        raise UsageError(f"Unknown subcommand `{esc(inv.name[:40])}`.")
    if inv.override and not (cmd.gated or cmd.takes_override):
        raise UsageError(f"`/golive {cmd.name}` does not take `--override`.")
    if cmd.validate:
        cmd.validate(inv)
    return cmd, inv
