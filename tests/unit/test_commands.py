"""The /golive command table derived from the runbook (pure: no Slack, no database)."""

from __future__ import annotations

import pytest

import runbook.steps.catalog  # noqa: F401 - registers the step kinds
from commands import build_commands, parse
from commands.base import UsageError
from commands.help import render_help
from runbook.model import RunbookError, default_runbook_path, load_runbook
from runbook.steps.base import REGISTRY

SHIPPED_HELP = """\
*golive* runs the go-live cutover from this channel. Subcommands:
• `/golive help` — this list
• `/golive status` — where the run stands, what is next, pending approvals
• `/golive start &lt;rc-tag&gt; [sha]` — open a cutover run for a release candidate
• `/golive go` — the autopilot: request every step that may run now, ask for approvals, stop at a failure, the canary and before finish (starts or resumes)
• `/golive pause` — stop the autopilot after the running step (nothing is interrupted)
• `/golive preflight [&lt;check&gt;]` — pre-cutover checks, run together into one checklist: freeze, prod config, backup drill, migration dry run, RC evidence (name a check to re-run just it)
• `/golive maintenance on|off` 🔒 — switch the maintenance page on or off (verified)
• `/golive deploy &lt;tag&gt;` 🔒 — pull the images, compose up, wait healthy
• `/golive migrate` — alembic upgrade head on the target database
• `/golive health` — check /api/health, admin login and the dashboard
• `/golive smoke` — run the team's smoke script
• `/golive traffic open` 🔒 — re-open public traffic (verified)
• `/golive plan [tag]` — the night's plan with today's values: each step, the digests and SQL it will use, its way back, expected durations, a digest (a card and the full file)
• `/golive canary` — real-money canary: deposit, withdraw, ledger and evidence checks, threaded sign-off and report
• `/golive watch start|stop|list` — the post-cutover watches (they start when traffic opens)
• `/golive incident security &lt;what happened&gt;` — declare a security incident: an alert with Start rollback
• `/golive rollback [--restore|--downgrade] [reason] | --break-glass "reason" [--trigger security|ledger]` 🔒 — request the rollback plan (also from an incident channel); break-glass: one person, for listed triggers
• `/golive finish [--abort "reason"]` — close the active run (refused while work is open; --abort ends it as aborted)
🔒 = needs a second person to approve; you can never approve your own request."""


def shipped(text: str | None = None):
    return load_runbook(text or default_runbook_path(), known_kinds=REGISTRY.keys())


@pytest.fixture(scope="module")
def table():
    return build_commands(shipped())


def usage_error(table, text: str) -> str:
    with pytest.raises(UsageError) as e:
        parse(text, table)
    return e.value.message


def test_the_shipped_runbooks_help_is_unchanged(table):
    assert render_help(table.values()) == SHIPPED_HELP


@pytest.mark.parametrize("text,command,args", [
    ("maintenance ON", "maintenance on", {}), ("maintenance off", "maintenance off", {}),
    ("deploy v2.3.1", "deploy", {"tag": "v2.3.1"}), ("traffic open", "traffic open", {}),
    ("preflight", "preflight", {}), ('migrate --override "dry run done by hand"', "migrate", {}),
])
def test_shipped_step_commands_reach_the_engine_as_before(table, text, command, args):
    seen = []

    class Engine:
        def request(self, **kw):
            seen.append(kw)
            return ["ok"]

    cmd, inv = parse(text, table)
    cmd.handler(type("Ctx", (), {"engine": Engine(), "actor": "A"})(), inv)
    assert [(s["command"], s["args"]) for s in seen] == [(command, args)]


@pytest.mark.parametrize("text,message", [
    ("maintenance sideways", "Usage: `/golive maintenance on|off`"),
    ("traffic close please", "Usage: `/golive traffic open`"),
    ("deploy", "Usage: `/golive deploy &lt;tag&gt;`, e.g. `/golive deploy v2.3.1`"),
    ("deploy ../../etc/passwd", "`../../etc/passwd` is not a valid image tag: "),
    ("migrate now", "`/golive migrate` takes no arguments."),
    ("status extra", "`/golive status` takes no arguments."),
    ('status --override "x"', "`/golive status` does not take `--override`."),
    ("cache warm", "Unknown subcommand `cache`."),
])
def test_shipped_usage_messages(table, text, message):
    assert usage_error(table, text).startswith(message)


STEP = """
[[phases.steps]]
id = "{id}"
title = "{title}"
kind = "{kind}"
command = "{command}"
"""


def with_steps(*steps: dict) -> str:
    text = default_runbook_path().read_text(encoding="utf-8")
    extra = "".join(STEP.format(**s) for s in steps)
    return text.replace("\n[rollback]\n", extra + "\n[rollback]\n")


def test_a_new_command_without_a_help_line_shows_its_steps_titles_and_what_is_not_built():
    rb = shipped(with_steps(
        {"id": "a", "title": "Warm A", "kind": "smoke", "command": "warm"},
        {"id": "b", "title": "Warm B", "kind": "canary", "command": "warm"},
        {"id": "c", "title": "Poke", "kind": "canary", "command": "poke"}))
    # "canary" stands for a kind not built yet (the real one is built: /golive canary)
    table = build_commands(rb, available=lambda kind: kind != "canary")
    assert table["warm"].summary == "Warm A; Warm B (partly not built yet)"
    assert table["poke"].summary == "Poke (not built yet)"
    names = list(table)
    assert names.index("warm") < names.index("poke"), "step commands keep the runbook's order"
    assert names[-2:] == ["rollback", "finish"], "the code commands close the list"


@pytest.mark.parametrize("command", ["status", "start now", "help me", "finish", "rollback x"])
def test_a_step_command_clashing_with_the_bots_own_is_a_runbook_problem(command):
    rb = shipped(with_steps({"id": "x", "title": "X", "kind": "smoke", "command": command}))
    with pytest.raises(RunbookError) as e:
        build_commands(rb)
    assert "step 'x'" in str(e.value) and "clashes with" in str(e.value), str(e.value)


def test_help_lines_must_name_a_command_of_the_runbook():
    text = default_runbook_path().read_text(encoding="utf-8").replace(
        'watch = "post', 'wach = "post')
    with pytest.raises(RunbookError) as e:
        shipped(text)
    assert "[help] names 'wach'" in str(e.value), str(e.value)


def test_editing_help_text_does_not_change_the_runbook_version():
    text = default_runbook_path().read_text(encoding="utf-8")
    edited = text.replace("run the team's smoke script", "run the smoke script")
    assert edited != text
    assert shipped(edited).version == shipped(text).version
