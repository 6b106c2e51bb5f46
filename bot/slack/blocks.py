"""Block Kit builders: the pieces every card shares (escaping, sections, approval lines and
buttons), a step's card and its live log, and the reason modal. Pure (no I/O); built with
slack_sdk's models, which check Slack's limits (50 blocks, 3,000 characters a section) before
Slack does. The other cards: a run's status and summary (``status_blocks``), a step that
went wrong and the rollback request (``recovery_blocks``), the preflight (``preflight_blocks``)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot.ids import Action, Block
from bot.slack.run_view import RunView  # noqa: F401 - bot.engine.requests reads it as blocks.RunView
from runbook.model import Step

SECTION_MAX = 2900  # Slack's limit is 3,000; keep room for the ellipsis
MAX_BLOCKS = 50

STATE_WORDS = {
    "pending": "not started",
    "awaiting_approval": "awaiting approval",
    "queued": "queued",
    "running": "running",
    "succeeded": "succeeded",
    "failed": "failed",
    "skipped": "skipped",
    "interrupted": "interrupted: outcome unknown",
    "cancelled": "cancelled",
    "not_available": "not available yet",
}
STATE_ICONS = {
    "pending": "⚪", "awaiting_approval": "🟡", "queued": "🔵", "running": "⏳",
    "succeeded": "✅", "failed": "❌", "skipped": "⏭️", "interrupted": "⚠️", "cancelled": "⛔",
    "not_available": "🚧",
}


def esc(text: object) -> str:
    """Text from steps and people, made literal for mrkdwn: `<!channel>` must not ping anyone,
    `<title>` must not become a link (Slack's three escapes)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_MARKED_DONE = re.compile(r"marked done by <@([UW][A-Z0-9_]+)>: ")


def marked_done_summary(user_id: str, reason: str) -> str:
    """The summary of a step someone marked done; ``summary_mrkdwn`` renders its mention."""
    return f"marked done by <@{user_id}>: {reason.strip()}"


def summary_mrkdwn(summary: object) -> str:
    """A step's summary as mrkdwn: the bot's own ``marked done by <@U…>`` mention stays a
    mention; the rest (a person's reason, a step's output) is escaped like all such text."""
    text = str(summary)
    m = _MARKED_DONE.match(text)
    if m is None:
        return esc(text)
    return f"marked done by <@{m.group(1)}>: {esc(text[m.end():])}"


def state_word(state: str) -> str:
    return STATE_WORDS.get(state, state)


def clip(text: str, limit: int = SECTION_MAX) -> str:
    """Keep a section under Slack's limit; the end of progress output matters most."""
    if len(text) <= limit:
        return text
    return "…" + text[-(limit - 1):]


def section(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=clip(text)))


def context(text: str) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=clip(text, 1900))])


def as_dicts(blocks: list[Any]) -> list[dict]:
    return [b.to_dict() for b in blocks[:MAX_BLOCKS]]


Content = dict[str, Any]
"""What a renderer gives the outbox sender (bot/outbox/): a message, or a file to upload."""


def message(text: str, blocks: list[Any]) -> Content:
    """A message's notification text and its blocks (Block Kit objects or their dicts)."""
    return {"text": text, "blocks": [b if isinstance(b, dict) else b.to_dict()
                                     for b in blocks[:MAX_BLOCKS]]}


def upload(filename: str, content: str | bytes, title: str) -> Content:
    """A file the sender uploads into the message's thread."""
    return {"filename": filename, "content": content, "title": title, "comment": None}


def duration(exe: Mapping[str, Any]) -> str:
    if exe.get("started_at") and exe.get("finished_at"):
        secs = (exe["finished_at"] - exe["started_at"]).total_seconds()
        return f"{secs:.1f}s"
    return ""


def _args_text(params: Mapping[str, Any]) -> str:
    args = params.get("args", params)
    shown = {k: v for k, v in dict(args).items() if k != "reason"}
    return ", ".join(f"`{esc(k)}={esc(v)}`" for k, v in shown.items()) or "no arguments"


def approval_lines(approval: Mapping[str, Any], votes: list[Mapping[str, Any]],
                    now: datetime) -> list[str]:
    yes = [v["user_id"] for v in votes if v["vote"] == "approve"]
    lines = [f"Requested by <@{approval['requester']}>"
             + (f" · needs {approval['required']} approver(s)"
                + (f" from {', '.join(approval['groups'])}" if approval["groups"] else ""))]
    if yes:
        lines.append("Approved by " + ", ".join(f"<@{u}>" for u in yes))
    status = approval["status"]
    if status == "pending":
        # Rounded up: a card rendered a moment after a 15-minute request still says 15.
        mins = max(0, math.ceil((approval["expires_at"] - now).total_seconds() / 60))
        lines.append(f"Expires in {mins} min")
    elif status == "rejected":
        lines.append(f"❌ Rejected by <@{approval['decided_by']}>"
                     + (f": {esc(approval['decision_note'])}" if approval.get("decision_note")
                        else ""))
    elif status == "cancelled":
        who = f" by <@{approval['decided_by']}>" if approval.get("decided_by") else ""
        lines.append(f"⛔ Cancelled{who}")
    elif status == "expired":
        lines.append("⌛ Expired: nobody approved in time. Ask again to retry.")
    elif status == "void":
        lines.append("🚫 Void: " + esc(approval.get("decision_note")
                                       or "the parameters or the preflight changed after the "
                                          "request."))
    return lines


def approval_buttons(approval_id: int, title: str) -> ActionsBlock:
    v = str(approval_id)
    return ActionsBlock(block_id=Block.ACTIONS, elements=[
        ButtonElement(text="Approve", action_id=Action.APPROVE, value=v, style="primary",
                      confirm=ConfirmObject(title="Approve?", text=f"Approve: {title[:250]}",
                                            confirm="Approve", deny="Back")),
        ButtonElement(text="Reject", action_id=Action.REJECT, value=v, style="danger",
                      confirm=ConfirmObject(title="Reject?", text=f"Reject: {title[:250]}",
                                            confirm="Reject", deny="Back")),
        ButtonElement(text="Cancel request", action_id=Action.CANCEL, value=v),
    ])


def step_card(*, step: Step, exe: Mapping[str, Any], approval: Mapping[str, Any] | None,
              votes: list[Mapping[str, Any]], progress: list[str] | None,
              now: datetime, checklist: list[str] | None = None) -> tuple[str, list[dict]]:
    """One message per step: the approval card that becomes the step's progress card.
    ``checklist`` (a preflight's lines, mrkdwn) replaces the progress tail on the card."""
    state = exe["state"]
    icon = STATE_ICONS.get(state, "")
    head = f"{icon} {step.title}"
    fields = [f"*State:* {state_word(state)}",
              f"*Run:* #{exe['run_id']} · step `{step.id}` · attempt {exe['attempt']}",
              f"*Parameters:* {_args_text(exe['params'])}"]
    if approval and approval.get("params", {}).get("preflight"):
        pre = approval["params"]["preflight"].split(":", 1)[-1].split(",")
        ok = sum(1 for p in pre if p.endswith(("=ok", "=warn")))
        fields.append(f"*Preflight:* {ok}/{len(pre)} checks green when requested")
    if exe.get("override_reason"):
        fields.append(f"*Override:* _{esc(exe['override_reason'])}_")
    if approval and exe["attempt"] > 1:
        fields.append(f"*Re-run:* attempt {exe['attempt']} needs its own approval; an earlier "
                      "approval does not carry over.")
    blocks: list[Any] = [HeaderBlock(block_id=Block.HEADER, text=head[:150]),
                         section("\n".join(fields))]
    if approval:
        blocks.append(context("\n".join(approval_lines(approval, votes, now))))
        if approval["status"] == "pending" and state == "awaiting_approval":
            blocks.append(approval_buttons(approval["id"], step.title))
    lines = progress if progress is not None else (exe.get("progress") or "").splitlines()
    if checklist:
        blocks.append(section("\n".join(checklist)))
    elif lines:
        blocks.append(section("```" + clip(esc("\n".join(lines[-15:])), 2800) + "```"))
    if exe.get("summary"):
        blocks.append(section(f"*Result:* {summary_mrkdwn(exe['summary'])}"))
    if exe.get("error"):
        blocks.append(section(f"*Why:* {esc(exe['error'])}"))
    dur = duration(exe)
    if dur:
        blocks.append(context(f"took {dur}"))
    text = f"{head} — {state_word(state)}"
    return text, as_dicts(blocks)


def progress_log(step: Step, lines: list[str]) -> tuple[str, list[dict]]:
    """The live log of a running step (a thread reply under its card)."""
    body = "```" + clip(esc("\n".join(lines[-25:])), 2800) + "```"
    return f"{step.title}: progress", as_dicts([context(f"Progress of *{esc(step.title)}*"),
                                              section(body)])


def reason_modal(*, callback_id: str, title: str, label: str, private_metadata: str
                 ) -> dict:
    """A modal asking for a written reason (reject, mark done)."""
    from slack_sdk.models.blocks import InputBlock, PlainTextInputElement
    from slack_sdk.models.views import View

    view = View(type="modal", callback_id=callback_id, title=title[:24], submit="Submit",
                close="Back", private_metadata=private_metadata, blocks=[
                    InputBlock(block_id=Block.REASON, label=label[:2000],
                               element=PlainTextInputElement(action_id=Block.REASON_INPUT,
                                                             multiline=True, max_length=500))])
    return view.to_dict()


def audit_head_context(head_id: int, head_hash: str) -> dict:
    """The context line anchoring the audit chain on a card (step results, finish): the short
    head ``42:3f9a1c2b4d5e6f70`` that `golive audit verify --head` accepts."""
    from bot.audit.anchor import short_anchor

    anchor = short_anchor(head_id, head_hash)
    return context(f"🔗 audit head `{anchor}` · `golive audit verify --head {anchor}` "
                    "checks the log against it").to_dict()
