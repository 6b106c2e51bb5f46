"""Plain-text rendering of channels and Block Kit."""

from __future__ import annotations

from bot.dev.sandbox import Workspace, render_channel
from bot.dev.sandbox.render import Renderer, human_size, render_channel_view, render_view
from bot.dev.sandbox.workspace import View
from tests.sandbox.conftest import DEPLOY_MODAL, approval_blocks


def test_channel_rendering_is_readable(workspace: Workspace) -> None:
    parent = workspace.post_message(
        "C_CUTOVER",
        "U_GOLIVE",
        "Approval needed",
        approval_blocks("deploy <https://ci.example/1|build 1> for <!subteam^S_APPROVERS>"),
    )
    workspace.post_message("C_CUTOVER", "U_GOLIVE", "Step *1* done", thread_ts=parent.ts)
    workspace.post_message("C_CUTOVER", "U_GOLIVE", "only bob", ephemeral_to="U_BOB")
    workspace.post_message(
        "C_CUTOVER",
        "U_GOLIVE",
        "fallback",
        ephemeral_to="U_ALICE",
        blocks=[
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": "<@U_CAROL> &amp; <#C_INCIDENT>"},
                    {"type": "plain_text", "text": "12:00"},
                ],
            },
            {"type": "divider"},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": "*Env*"}]},
        ],
    )
    workspace.update_message("C_CUTOVER", parent.ts, text="Approval needed", blocks=parent.blocks)

    assert render_channel(workspace, "C_CUTOVER", for_user="U_ALICE").splitlines() == [
        "=== #cutover ===",
        "golive (edited)",
        "  # Approval needed",
        "  @alice wants to *deploy build 1 (https://ci.example/1) for @golive-approvers*",
        "  [1] Approve  [2] Reject",
        "  ↳ golive",
        "    Step *1* done",
        "",
        "golive (only visible to you)",
        "  @carol & #incident | 12:00",
        "  " + "─" * 40,
        "  *Env*",
    ]
    as_bob = render_channel(workspace, "C_CUTOVER", for_user="U_BOB")
    assert "golive (only visible to you)\n  only bob" in as_bob
    assert "@carol" not in as_bob
    assert "(only visible to @bob)" in render_channel(workspace, "C_CUTOVER")


def test_buttons_are_numbered_over_the_whole_channel(workspace: Workspace) -> None:
    first = workspace.post_message("C_CUTOVER", "U_GOLIVE", "a", approval_blocks("one"))
    second = workspace.post_message("C_CUTOVER", "U_GOLIVE", "b", approval_blocks("two"))
    view = render_channel_view(workspace, "C_CUTOVER")
    assert "[3] Approve  [4] Reject" in view.text
    ref = view.buttons[3]
    assert (ref.ts, ref.index, ref.action_id) == (second.ts, 1, "approve")
    assert view.buttons[2].ts == first.ts


def test_wrapping_files_and_reactions(workspace: Workspace) -> None:
    fobj = workspace.add_file("report.txt", 5, url_base="http://x/files/")
    workspace.store_file_content(fobj.id, b"x" * 1536)
    msg = workspace.post_message("C_CUTOVER", "U_GOLIVE", "word " * 30, files=[fobj.id])
    workspace.add_reaction("C_CUTOVER", msg.ts, "eyes", "U_BOB")
    lines = render_channel(workspace, "C_CUTOVER", width=40).splitlines()
    assert all(len(line) <= 40 for line in lines)
    assert lines[-2:] == ["  📎 report.txt (1.5 KB)", "  :eyes: 1"]
    assert human_size(532) == "532 B"


def test_mrkdwn_conversion(workspace: Workspace) -> None:
    r = Renderer(workspace)
    assert r.mrkdwn("<@U_BOB> <@U_NOPE> <!subteam^S_APPROVERS> <!here>") == (
        "@bob @U_NOPE @golive-approvers @here"
    )
    assert r.mrkdwn("<https://x.io|docs> <https://y.io> <mailto:a@b.c|a@b.c> &lt;ok&gt;") == (
        "docs (https://x.io) https://y.io a@b.c <ok>"
    )


def test_modal_rendering_shows_errors(workspace: Workspace) -> None:
    view = workspace.add_view(
        View(id="V1", user="U_ALICE", view=DEPLOY_MODAL, hash="h", root_view_id="V1")
    )
    view.errors = {"version": "must start with v"}
    text = render_view(workspace, "V1")
    assert text.splitlines()[1:] == [
        "  Version: [plain_text_input]",
        "    ! must start with v",
        "  <Run>",
    ]
