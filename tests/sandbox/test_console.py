"""The terminal console, driven through handle_line (no TTY needed)."""

from __future__ import annotations

import io

from bot.dev.sandbox import Console, SandboxServer, Workspace
from tests.sandbox.conftest import FakeBot


def make_console(sandbox: SandboxServer, workspace: Workspace) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(sandbox, workspace, out=out), out


def test_slash_then_switch_user_and_click_by_number(
    sandbox: SandboxServer, bot: FakeBot, workspace: Workspace
) -> None:
    console, out = make_console(sandbox, workspace)
    assert console.prompt == "alice@#cutover> "

    console.handle_line("/golive request deploy")
    msg = workspace.wait_for_message("C_CUTOVER", contains="Approval needed")
    assert "[1] Approve  [2] Reject" in out.getvalue()

    console.handle_line("/as bob")
    assert console.prompt == "bob@#cutover> "
    console.handle_line("1")

    workspace.wait_for(lambda: msg.edited)
    assert bot.actions[0]["user"]["id"] == "U_BOB"
    assert bot.actions[0]["actions"][0]["action_id"] == "approve"
    text = out.getvalue()
    assert "(now acting as bob)" in text
    assert "golive (updated)\n  Approved by @bob" in text
    console.close()


def test_ephemerals_only_for_the_current_user_and_errors_are_one_line(
    sandbox: SandboxServer, bot: FakeBot, workspace: Workspace
) -> None:
    console, out = make_console(sandbox, workspace)
    console.handle_line("/golive ping")
    assert "golive (only visible to you)\n  pong" in out.getvalue()

    console.handle_line("/as carol")
    workspace.post_message("C_CUTOVER", "U_GOLIVE", "for alice only", ephemeral_to="U_ALICE")
    assert "for alice only" not in out.getvalue()

    console.handle_line("7")
    assert "! there is no button [7]; /show to renumber" in out.getvalue()

    sandbox.bot_url = "http://127.0.0.1:9/slack/events"
    console.handle_line("/golive ping")
    last = out.getvalue().splitlines()[-1]
    assert last.startswith("! /golive ping failed: the bot is not reachable (dispatch_failed")
    console.close()


def test_navigation_commands(sandbox: SandboxServer, workspace: Workspace) -> None:
    console, out = make_console(sandbox, workspace)
    parent = workspace.post_message("C_CUTOVER", "U_GOLIVE", "cutover started")
    workspace.post_message("C_INCIDENT", "U_GOLIVE", "pager fired")
    assert "(new activity in #incident; /in incident to see it)" in out.getvalue()
    workspace.post_message("C_CUTOVER", "U_GOLIVE", "step 1 ok", thread_ts=parent.ts)
    assert "in thread: golive: cutover started\n  ↳ golive\n    step 1 ok" in out.getvalue()

    console.handle_line("/thread")
    assert "1. golive: cutover started (1 replies)" in out.getvalue()
    console.handle_line("/in incident")
    assert console.prompt == "alice@#incident> "
    assert "=== #incident ===\ngolive\n  pager fired" in out.getvalue()
    console.handle_line("/users")
    assert "dave       Dave Guest           U_DAVE     guest" in out.getvalue()
    console.handle_line("/as eve")
    assert "! eve is deactivated" in out.getvalue()
    console.handle_line("/bogus")
    assert "unknown command /bogus; try /help" in out.getvalue()
    console.handle_line("/quit")
    assert console.done
    console.close()


def test_modal_submit_from_the_console(
    sandbox: SandboxServer, bot: FakeBot, workspace: Workspace
) -> None:
    console, out = make_console(sandbox, workspace)
    console.handle_line("/golive modal")
    view = workspace.wait_for(lambda: workspace.open_views("U_ALICE")[-1:])[0]
    assert "modal " + view.id + ": Deploy" in out.getvalue()
    console.handle_line("/submit version.value=1.0")
    assert "! version: must start with v" in out.getvalue()
    console.handle_line("/submit version.value=v1.0")
    assert view.closed
    console.close()


def test_a_thread_header_names_the_card_not_the_state_it_has_left(
    sandbox: SandboxServer, workspace: Workspace
) -> None:
    console, out = make_console(sandbox, workspace)
    card = workspace.post_message("C_CUTOVER", "U_GOLIVE",
                                  "🟡 Maintenance mode on — awaiting approval")
    # The step's log arrives in the card's thread before the approved card is re-rendered.
    workspace.post_message("C_CUTOVER", "U_GOLIVE", "turning maintenance on", thread_ts=card.ts)
    header = [line for line in out.getvalue().splitlines() if line.startswith("in thread:")]
    assert header == ["in thread: golive: Maintenance mode on"], \
        f"the thread header repeats a state the card no longer has: {header}"
    console.handle_line("/thread")
    assert "1. golive: Maintenance mode on (1 replies)" in out.getvalue(), out.getvalue()
    console.close()
