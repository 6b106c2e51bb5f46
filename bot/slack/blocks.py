"""Block Kit builders: every card the bot posts. Pure (no I/O); built with slack_sdk's models,
which check Slack's limits (50 blocks, 3,000 characters a section) before Slack does."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
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
from runbook.model import Runbook, Step

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


def _section(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=clip(text)))


def _context(text: str) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=clip(text, 1900))])


def _dicts(blocks: list[Any]) -> list[dict]:
    return [b.to_dict() for b in blocks[:MAX_BLOCKS]]


def _duration(exe: Mapping[str, Any]) -> str:
    if exe.get("started_at") and exe.get("finished_at"):
        secs = (exe["finished_at"] - exe["started_at"]).total_seconds()
        return f"{secs:.1f}s"
    return ""


def _args_text(params: Mapping[str, Any]) -> str:
    args = params.get("args", params)
    shown = {k: v for k, v in dict(args).items() if k != "reason"}
    return ", ".join(f"`{esc(k)}={esc(v)}`" for k, v in shown.items()) or "no arguments"


def _approval_lines(approval: Mapping[str, Any], votes: list[Mapping[str, Any]],
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


def _approval_buttons(approval_id: int, title: str) -> ActionsBlock:
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
                         _section("\n".join(fields))]
    if approval:
        blocks.append(_context("\n".join(_approval_lines(approval, votes, now))))
        if approval["status"] == "pending" and state == "awaiting_approval":
            blocks.append(_approval_buttons(approval["id"], step.title))
    lines = progress if progress is not None else (exe.get("progress") or "").splitlines()
    if checklist:
        blocks.append(_section("\n".join(checklist)))
    elif lines:
        blocks.append(_section("```" + clip(esc("\n".join(lines[-15:])), 2800) + "```"))
    if exe.get("summary"):
        blocks.append(_section(f"*Result:* {summary_mrkdwn(exe['summary'])}"))
    if exe.get("error"):
        blocks.append(_section(f"*Why:* {esc(exe['error'])}"))
    dur = _duration(exe)
    if dur:
        blocks.append(_context(f"took {dur}"))
    text = f"{head} — {state_word(state)}"
    return text, _dicts(blocks)


def progress_log(step: Step, lines: list[str]) -> tuple[str, list[dict]]:
    """The live log of a running step (a thread reply under its card)."""
    body = "```" + clip(esc("\n".join(lines[-25:])), 2800) + "```"
    return f"{step.title}: progress", _dicts([_context(f"Progress of *{esc(step.title)}*"),
                                              _section(body)])


def rollback_card(*, approval: Mapping[str, Any], votes: list[Mapping[str, Any]],
                  runbook: Runbook, now: datetime, plan: str = "", which: str = ""
                  ) -> tuple[str, list[dict]]:
    """A rollback request: which run, the plan filled with its values (``plan``), approval."""
    head = "🚨 Rollback requested"
    steps = "\n".join(f"{i}. {esc(s.title)}" for i, s in enumerate(runbook.rollback, 1))
    why = f"\n*Reason:* _{esc(approval['reason'])}_" if approval.get("reason") else ""
    about = f"Rolls back {which}.\n" if which else ""
    body = f"```{esc(plan)[:2700]}```" if plan else steps
    blocks: list[Any] = [HeaderBlock(text=head), _section(f"{about}*Plan:*\n{body}{why}"),
                         _context("\n".join(_approval_lines(approval, votes, now)))]
    if approval["status"] == "pending":
        blocks.append(_approval_buttons(approval["id"], "Rollback"))
    elif approval["status"] == "approved":
        blocks.append(_section("Rollback approved: steps run in order, each in its own message."))
    return f"{head} — {approval['status']}", _dicts(blocks)


def mark_done_card(*, approval: Mapping[str, Any], votes: list[Mapping[str, Any]], step: Step,
                   now: datetime) -> tuple[str, list[dict]]:
    """A second person's decision to treat an interrupted gated step as done."""
    head = f"🟡 Treat `{step.id}` as done?"
    body = (f"Treat *{esc(step.title)}* (`{step.id}`, attempt {approval['params']['attempt']}) "
            f"as done: reason _{esc(approval['reason'] or '')}_\nIt was interrupted with its "
            "outcome unknown; approving records it as succeeded without running it again.")
    blocks: list[Any] = [_section(f"*{head}*\n{body}"),
                         _context("\n".join(_approval_lines(approval, votes, now)))]
    if approval["status"] == "pending":
        blocks.append(_approval_buttons(approval["id"], f"treat {step.id} as done"))
    elif approval["status"] == "approved":
        blocks.append(_section(f"✅ `{step.id}` is recorded as done."))
    return f"Treat {step.id} as done? — {approval['status']}", _dicts(blocks)


def interrupted_card(*, step: Step, exe: Mapping[str, Any]) -> tuple[str, list[dict]]:
    text = (f"⚠️ *{esc(step.title)}* was interrupted: outcome unknown. It will not be re-run on its "
            "own. Check the target, then choose:")
    v = str(exe["id"])
    blocks = [_section(text), ActionsBlock(block_id=Block.ACTIONS, elements=[
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
    return f"{step.title} was interrupted: outcome unknown", _dicts(blocks)


@dataclass
class RunView:
    run: Mapping[str, Any]
    runbook: Runbook
    executions: list[Mapping[str, Any]]
    approvals: list[Mapping[str, Any]]
    votes: Mapping[int, list[Mapping[str, Any]]]
    available: Mapping[str, bool] = field(default_factory=dict)
    preflight: Mapping[str, Any] | None = None
    """The run's stored preflight (bot/engine/preflight.py ``_preflight_summary``)."""

    def latest(self) -> dict[str, Mapping[str, Any]]:
        out: dict[str, Mapping[str, Any]] = {}
        for e in self.executions:
            if e["step_id"] not in out or e["attempt"] > out[e["step_id"]]["attempt"]:
                out[e["step_id"]] = e
        return out

    def state_of(self, step: Step) -> str:
        exe = self.latest().get(step.id)
        if exe:
            return exe["state"]
        return "pending" if self.available.get(step.kind, False) else "not_available"

    def states(self) -> dict[str, str]:
        return {k: v["state"] for k, v in self.latest().items()}

    def runnable(self) -> list[Step]:
        """Cutover steps that can run and are not manual: what makes the cutover done."""
        return [s for s in self.runbook.cutover_steps()
                if self.state_of(s) != "not_available" and not s.params.get("manual")]

    def next_steps(self) -> list[Step]:
        """Runnable steps whose requirements are met and that nobody has asked for yet."""
        runnable = self.runnable()
        return [s for s in self.runbook.next_steps(self.states()) if s in runnable
                and self.state_of(s) not in ("running", "queued", "awaiting_approval")]

    def phase_title(self) -> str:
        """The first phase with a runnable step not done yet, or "done"."""
        runnable, states = self.runnable(), self.states()
        return next((p.title for p in self.runbook.phases
                     if any(s in runnable and states.get(s.id) not in ("succeeded", "skipped")
                            for s in p.steps)), "done")

    def cutover_done(self) -> bool:
        return self.phase_title() == "done"

    def phase_done(self, phase_id: str) -> bool:
        """Whether every runnable step of phase ``phase_id`` succeeded (or was skipped)."""
        runnable, states = self.runnable(), self.states()
        return any(p.id == phase_id and all(
            states.get(s.id) in ("succeeded", "skipped") for s in p.steps if s in runnable)
            for p in self.runbook.phases)

    def not_run(self) -> list[Step]:
        """Runnable cutover steps that did not succeed (or get skipped)."""
        states = self.states()
        return [s for s in self.runnable() if states.get(s.id) not in ("succeeded", "skipped")]

    def outcome(self) -> str:
        """The run's outcome as of now: completed only when every runnable step is done."""
        if self.run["status"] not in ("active", "completed"):
            return str(self.run["status"])
        if any(self.states().get(s.id) == "succeeded" for s in self.runbook.rollback):
            return "rolled_back"
        return "incomplete" if self.not_run() else "completed"


def _outcome_line(view: RunView) -> str | None:
    outcome = view.outcome()
    if view.run["status"] == "active" and outcome == "incomplete":
        return None  # still running: "incomplete" would only mean "not finished yet"
    missing = view.not_run()
    line = f"*Outcome:* {outcome.replace('_', ' ')}"
    if missing and outcome != "completed":
        line += " — did not run: " + ", ".join(f"`{s.id}`" for s in missing)
    return line[:2900]


def _step_line(view: RunView, step: Step) -> str:
    state = view.state_of(step)
    exe = view.latest().get(step.id)
    extra = ""
    if exe and exe.get("summary") and state == "succeeded":
        extra = f" — {summary_mrkdwn(exe['summary'])}"
    elif exe and exe.get("error") and state in ("failed", "interrupted", "cancelled"):
        extra = f" — {esc(exe['error'])}"
    gate = " 🔒" if step.gated else ""
    return f"{STATE_ICONS.get(state, '')} `{step.id}`{gate} {state_word(state)}{extra}"[:400]


def status_blocks(view: RunView | None) -> tuple[str, list[dict]]:
    """`/golive status`: the run, its phase, each step with its state, pending approvals."""
    if view is None:
        text = "No cutover run yet. Start one with `/golive start &lt;rc-tag&gt; [sha]`."
        return text, _dicts([_section(text)])
    run = view.run
    # Steps that cannot run (not built) are neither "next" nor what keeps a phase open.
    nxt, phase = view.next_steps(), view.phase_title()
    head = f"Cutover run #{run['id']} — {run['status']}"
    info = [f"*RC:* `{esc(run.get('rc_tag') or 'not set')}`"
            + (f" · sha `{run['rc_sha'][:12]}`" if run.get("rc_sha") else "")
            + f" · started by <@{run['started_by']}>",
            f"*Phase:* {phase}"]
    if nxt:
        cmd = nxt[0].command
        info.append(f"*Next:* {esc(nxt[0].title)}" + (f" — `/golive {cmd}`" if cmd else ""))
    elif phase == "done" and run["status"] == "active":
        info.append("*Next:* the cutover steps are done; `/golive finish` closes the run")
    if run["status"] != "active":
        info.append(_outcome_line(view) or "")
    blocks: list[Any] = [HeaderBlock(text=head[:150]), _section("\n".join(info))]
    for phase_ in view.runbook.phases:
        lines = [_step_line(view, s) for s in phase_.steps]
        blocks.append(_section(f"*{phase_.title}*\n" + "\n".join(lines)))
    if view.preflight:
        from bot.slack.preflight_blocks import status_section

        blocks.append(_section(status_section(view.preflight)))
    rb = [s for s in view.runbook.rollback if s.id in view.latest()]
    if rb:
        blocks.append(_section("*Rollback*\n" + "\n".join(_step_line(view, s) for s in rb)))
    pending = [a for a in view.approvals if a["status"] == "pending"]
    if pending:
        lines = [f"• {esc(a['action'])} — requested by <@{a['requester']}>, "
                 f"{len([v for v in view.votes.get(a['id'], []) if v['vote'] == 'approve'])}"
                 f"/{a['required']} approvals" for a in pending]
        blocks.append(_section("*Pending approvals*\n" + "\n".join(lines)))
    else:
        blocks.append(_context("No pending approvals."))
    return head, _dicts(blocks)


def run_summary(view: RunView) -> tuple[str, list[dict]]:
    """The end-of-cutover summary: each step, who approved, how long, versions before/after."""
    run = view.run
    facts = run.get("facts") or {}
    latest = view.latest()
    approvers: dict[int, list[str]] = {
        a["id"]: [v["user_id"] for v in view.votes.get(a["id"], []) if v["vote"] == "approve"]
        for a in view.approvals}
    lines = []
    for step in view.runbook.all_steps():
        exe = latest.get(step.id)
        if not exe:
            continue
        who = approvers.get(exe["approval_id"] or -1, [])
        by = f" · approved by {', '.join(f'<@{u}>' for u in who)}" if who else ""
        dur = _duration(exe)
        lines.append(f"{STATE_ICONS.get(exe['state'], '')} {esc(step.title)} — "
                     f"{state_word(exe['state'])}{f' in {dur}' if dur else ''}{by}")
    versions = []
    prev, new = facts.get("previous_images") or {}, facts.get("deployed_images") or {}
    for svc in sorted(set(prev) | set(new)):
        versions.append(f"`{svc}`: {_image(prev.get(svc))} → {_image(new.get(svc))}")
    if facts.get("alembic_before") or facts.get("alembic_after"):
        versions.append(f"schema: `{facts.get('alembic_before')}` → "
                        f"`{facts.get('alembic_after')}`")
    head = f"Cutover run #{run['id']} summary"
    outcome = _outcome_line(view) or f"*Outcome:* {view.outcome().replace('_', ' ')}"
    blocks: list[Any] = [HeaderBlock(text=head), _section(outcome),
                         _section("\n".join(lines) or "No steps ran.")]
    if versions:
        blocks.append(_section("*Versions*\n" + "\n".join(versions)))
    return head, _dicts(blocks)


def _image(info: Any) -> str:
    if isinstance(info, Mapping):
        return f"`{info.get('image') or info.get('ref') or '?'}`"
    return f"`{info}`" if info else "—"


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
    from bot.audit_anchor import short_anchor

    anchor = short_anchor(head_id, head_hash)
    return _context(f"🔗 audit head `{anchor}` · `golive audit verify --head {anchor}` "
                    "checks the log against it").to_dict()
