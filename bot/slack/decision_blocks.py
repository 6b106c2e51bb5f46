"""Block Kit builders for guided failure (issue 21): the decision part of a failed or
interrupted step's card (who owns it, the options the runbook allows, a Skip waiting for a
second person, the deadline), the Skip and Abort modals, the deviation lines. Pure (no I/O)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    ConfirmObject,
    InputBlock,
    PlainTextInputElement,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.ids import Action, Block, Callback
from bot.slack.blocks import as_dicts, context, esc, section
from runbook.model import Step
from runbook.rules.guided_failure import Choice, Option

OPTION_ACTION = {Option.RETRY: Action.DECISION_RETRY, Option.SKIP: Action.DECISION_SKIP,
                 Option.ROLLBACK: Action.DECISION_ROLLBACK, Option.HOLD: Action.DECISION_HOLD,
                 Option.ABORT: Action.DECISION_ABORT}


def _when(t: datetime) -> str:
    return t.strftime("%H:%M UTC")


def decision_part(*, step: Step, exe: Mapping[str, Any], decision: Mapping[str, Any] | None,
                  choices: Sequence[Choice], deadline: datetime) -> list[dict]:
    """What a decidable step's card shows under its result: the owner (or Take it), the
    options, a pending Skip and the deadline."""
    value = str(exe["id"])
    word = "interrupted, outcome unknown" if exe["state"] == "interrupted" else "failed"
    owner = decision["owner"] if decision else None
    head = (f"🧭 *Decision needed:* *{esc(step.title)}* — {word}. Nothing runs until "
            "someone decides.")
    lines = [head]
    if owner:
        lines.append(f"*Owner:* <@{owner}> — only their choice counts.")
    else:
        lines.append("*Owner:* nobody yet — an operator clicks *Take it* to own the decision.")
    if decision and decision.get("held_by"):
        lines.append(f"✋ On hold since {_when(decision['held_at'])} "
                     f"(<@{decision['held_by']}>).")
    out: list[Any] = [section("\n".join(lines))]
    skip = decision.get("skip_reason") if decision else None
    if skip:
        out.append(section(f"⏭️ *Skip asked by <@{decision['skip_requested_by']}>:* "  # type: ignore[index]
                           f"_{esc(skip)}_\nA second person approves it (not the owner); it is "
                           "recorded as a deviation."))
    buttons: list[ButtonElement] = []
    if not owner:
        buttons.append(ButtonElement(text="Take it", action_id=Action.DECISION_TAKE,
                                     value=value, style="primary"))
    for c in choices:
        confirm = None
        if c.option is Option.RETRY:
            confirm = ConfirmObject(title="Retry?", text=f"Run {step.title[:200]} again?"
                                    + (" It needs a new approval." if step.gated else ""),
                                    confirm="Retry", deny="Back")
        elif c.option is Option.ROLLBACK:
            confirm = ConfirmObject(title="Roll back?", text="Request the rollback plan "
                                    "(needs its approval).", confirm="Request rollback",
                                    deny="Back")
        label = "Skip…" if c.option is Option.SKIP else (
            "Abort the run…" if c.option is Option.ABORT else c.label)
        buttons.append(ButtonElement(text=label[:75], action_id=OPTION_ACTION[c.option],
                                     value=value, confirm=confirm,
                                     style="danger" if c.option in (Option.ROLLBACK,
                                                                    Option.ABORT) else None))
    if skip:
        buttons.append(ButtonElement(text="Approve skip", action_id=Action.DECISION_SKIP_APPROVE,
                                     value=value))
    out.append(ActionsBlock(block_id=Block.DECISION, elements=buttons[:25]))
    out.append(context(f"⏰ Decide by {_when(deadline)}: a reminder at half time; at the "
                       "deadline the operators are paged. Nothing runs by itself."))
    return as_dicts(out)


def decided_line(decision: Mapping[str, Any]) -> dict:
    """The card's line once the decision was taken."""
    what = {"retry": "Retry", "skip": "Skip (a deviation)", "rollback": "Roll back",
            "abort": "Abort the run"}.get(decision["chosen"], decision["chosen"])
    note = f": _{esc(decision['note'])}_" if decision.get("note") else ""
    return context(f"🧭 Decided by <@{decision['chosen_by']}> (owner <@{decision['owner']}>): "
                   f"*{what}*{note}").to_dict()


def requires_skipped(skipped: Sequence[tuple[str, str | None]]) -> dict:
    """A step whose requirements include a skipped step says so (``(step id, reason)``)."""
    parts = [f"`{sid}`" + (f" (_{esc(r)}_)" if r else "") for sid, r in skipped]
    return context(f"⏭️ Requires {', '.join(parts)}, which was skipped: met with a deviation."
                   ).to_dict()


def deviations(rows: Sequence[Mapping[str, Any]]) -> dict:
    """The run summary's deviations: each skipped step, who asked, who approved, why."""
    lines = [f"⏭️ `{r['step_id']}` skipped by <@{r['skip_requested_by']}>, approved by "
             f"<@{r['chosen_by']}>: _{esc(r['skip_reason'] or '')}_" for r in rows]
    return section("*Deviations*\n" + "\n".join(lines)[:2900]).to_dict()


def expired_line(*, asked: str, backup: str | None) -> dict:
    """An approval that expired: what happened and who was asked."""
    also = f", then the backup group {backup}" if backup else ""
    return context(f"⌛ Expired as a rejection: nobody approved by the deadline. Asked: "
                   f"{asked}{also}. Nothing ran.").to_dict()


def skip_modal(private_metadata: str, step: Step) -> dict:
    return View(type="modal", callback_id=Callback.DECISION_SKIP, title="Skip this step",
                submit="Ask", close="Back", private_metadata=private_metadata, blocks=[
                    SectionBlock(text=f"Skip *{esc(step.title)}*: the steps after it go on as "
                                 "if it had succeeded, recorded as a deviation. A second person "
                                 "must approve."),
                    InputBlock(block_id=Block.REASON, label="Why can it be skipped?",
                               element=PlainTextInputElement(action_id=Block.REASON_INPUT,
                                                             multiline=True, max_length=500))]
                ).to_dict()


def abort_modal(private_metadata: str, rc_tag: str | None) -> dict:
    what = f"the run's RC tag `{esc(rc_tag)}`" if rc_tag else "`abort`"
    return View(type="modal", callback_id=Callback.DECISION_ABORT, title="Abort the run",
                submit="Abort", close="Back", private_metadata=private_metadata, blocks=[
                    SectionBlock(text=f"Ends the run as *aborted*: queued steps are cancelled, "
                                 f"pending approvals void. Type {what} to confirm."),
                    InputBlock(block_id=Block.DECISION_TAG, label="Confirm",
                               element=PlainTextInputElement(action_id=Block.DECISION_TAG_INPUT,
                                                             max_length=120)),
                    InputBlock(block_id=Block.REASON, label="Why abort?",
                               element=PlainTextInputElement(action_id=Block.REASON_INPUT,
                                                             multiline=True, max_length=500))]
                ).to_dict()
