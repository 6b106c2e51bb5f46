"""Block Kit builders for the cards of a step that went wrong: the interrupted step's choices
(retry, mark done, start rollback), the request to treat it as done, and the rollback request.
Pure (no I/O); the shared pieces (approval lines and buttons) are ``bot.slack.blocks``'s."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import ActionsBlock, ButtonElement, ConfirmObject, HeaderBlock

from bot.ids import Action, Block
from bot.slack.blocks import approval_buttons, approval_lines, as_dicts, context, esc, section
from runbook.model import Runbook, Step


def rollback_card(*, approval: Mapping[str, Any], votes: list[Mapping[str, Any]],
                  runbook: Runbook, now: datetime, plan: str = "", which: str = ""
                  ) -> tuple[str, list[dict]]:
    """A rollback request: which run, the plan filled with its values (``plan``), approval."""
    head = "🚨 Rollback requested"
    steps = "\n".join(f"{i}. {esc(s.title)}" for i, s in enumerate(runbook.rollback, 1))
    why = f"\n*Reason:* _{esc(approval['reason'])}_" if approval.get("reason") else ""
    about = f"Rolls back {which}.\n" if which else ""
    body = f"```{esc(plan)[:2700]}```" if plan else steps
    blocks: list[Any] = [HeaderBlock(text=head), section(f"{about}*Plan:*\n{body}{why}"),
                         context("\n".join(approval_lines(approval, votes, now)))]
    if approval["status"] == "pending":
        blocks.append(approval_buttons(approval["id"], "Rollback"))
    elif approval["status"] == "approved":
        blocks.append(section("Rollback approved: steps run in order, each in its own message."))
    return f"{head} — {approval['status']}", as_dicts(blocks)


def mark_done_card(*, approval: Mapping[str, Any], votes: list[Mapping[str, Any]], step: Step,
                   now: datetime) -> tuple[str, list[dict]]:
    """A second person's decision to treat an interrupted gated step as done."""
    head = f"🟡 Treat `{step.id}` as done?"
    body = (f"Treat *{esc(step.title)}* (`{step.id}`, attempt {approval['params']['attempt']}) "
            f"as done: reason _{esc(approval['reason'] or '')}_\nIt "
            + ("failed" if approval["params"].get("state") == "failed" else
               "was interrupted with its outcome unknown")
            + "; approving records it as succeeded without running it again.")
    blocks: list[Any] = [section(f"*{head}*\n{body}"),
                         context("\n".join(approval_lines(approval, votes, now)))]
    if approval["status"] == "pending":
        blocks.append(approval_buttons(approval["id"], f"treat {step.id} as done"))
    elif approval["status"] == "approved":
        blocks.append(section(f"✅ `{step.id}` is recorded as done."))
    return f"Treat {step.id} as done? — {approval['status']}", as_dicts(blocks)


def interrupted_card(*, step: Step, exe: Mapping[str, Any]) -> tuple[str, list[dict]]:
    text = (f"⚠️ *{esc(step.title)}* was interrupted: outcome unknown. It will not be re-run on its "
            "own. Check the target, then choose:")
    v = str(exe["id"])
    blocks = [section(text), ActionsBlock(block_id=Block.ACTIONS, elements=[
        ButtonElement(text="Retry", action_id=Action.RETRY, value=v,
                      confirm=ConfirmObject(title="Retry?", text=f"Run {step.title[:200]} again?"
                                            + (" It needs a new approval." if step.gated
                                               else ""),
                                            confirm="Retry", deny="Back")),
        ButtonElement(text="Mark done…", action_id=Action.MARK_DONE, value=v),
        ButtonElement(text="Start rollback", action_id=Action.START_ROLLBACK, value=v,
                      style="danger",
                      confirm=ConfirmObject(title="Start rollback?",
                                            text="Request the rollback plan (needs approval).",
                                            confirm="Request rollback", deny="Back")),
    ])]
    return f"{step.title} was interrupted: outcome unknown", as_dicts(blocks)
