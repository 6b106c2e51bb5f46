"""The living run card (issue 21 item 4): one top-level message per run, posted at ``start`` and
updated in place, that says where the night stands: the phase, the last step and its state, the
autopilot's state, who owns an open decision and the next deadline, and on each step's line who
asked for it and, once granted, who approved it. Step cards that need nobody
are replies in its thread. Once the run has ended the same message is the run summary."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import HeaderBlock

from bot.slack.blocks import (
    MAX_BLOCKS,
    SECTION_MAX,
    STATE_ICONS,
    as_dicts,
    context,
    esc,
    section,
    state_word,
)
from bot.slack.run_view import RunView
from bot.slack.status_blocks import _step_line, autopilot_line, where_it_ended

RUN_CARD_TITLE = "Cutover run #{id}"


def _when(t: datetime) -> str:
    return t.strftime("%H:%M UTC")


def _last_step(view: RunView) -> tuple[Any, Mapping[str, Any]] | None:
    """The step that moved last (its newest attempt), for the card's "Now" line."""
    latest = view.latest()
    best = None
    for step in view.runbook.all_steps():
        exe = latest.get(step.id)
        if exe is None:
            continue
        at = exe.get("finished_at") or exe.get("started_at") or exe.get("created_at")
        if best is None or (str(at), exe["id"]) > best[0]:
            best = ((str(at), exe["id"]), step, exe)
    return (best[1], best[2]) if best else None


def _approval(view: RunView, exe: Mapping[str, Any]) -> str:
    """Who asked for a gated step and, once its approval is granted, who approved it."""
    a = view.approval_of(exe)
    if a is None:
        return ""
    who = view.approved_by(exe) if a["status"] == "approved" else []
    return (f" · asked by <@{a['requester']}>"
            + (f", approved by {', '.join(f'<@{u}>' for u in who)}" if who else ""))


def _step_sections(lines: Sequence[str], room: int) -> list[Any]:
    """The step lines in at most ``room`` sections, each under Slack's 3,000 characters and
    no line cut in two; what does not fit is counted on the last line (status lists all)."""
    chunks: list[list[str]] = [[]]
    for line in lines:
        if chunks[-1] and len("\n".join([*chunks[-1], line])) > SECTION_MAX:
            chunks.append([])
        chunks[-1].append(line)
    if len(chunks) > room:
        chunks = chunks[:room]
        left = len(lines) - sum(len(c) for c in chunks)
        while True:
            note = f"… and {left} more steps: `/golive status` lists every step."
            if len("\n".join([*chunks[-1], note])) <= SECTION_MAX:
                break
            chunks[-1].pop()
            left += 1
        chunks[-1].append(note)
    return [section("\n".join(c)) for c in chunks if c]


def run_card(view: RunView, *, autopilot: Mapping[str, Any] | None,
             decisions: Sequence[Mapping[str, Any]], deadline: tuple[datetime, str] | None
             ) -> tuple[str, list[dict]]:
    """The run card while the run is active. ``decisions``: the open decisions (``step``:
    its title, ``owner``: who took it or None); ``deadline``: the next one and what it is."""
    run = view.run
    phase = view.phase_title()
    rb = view.rollback_state()
    if rb is not None:
        phase = f"Rollback ({rb.replace('_', ' ')})"
    head = RUN_CARD_TITLE.format(id=run["id"]) + f" — {phase}"
    rc = esc(run.get("rc_tag") or "not set")
    lines = [f"*RC:* `{rc}` · started by <@{run['started_by']}>", f"*Phase:* {esc(phase)}"]
    last = _last_step(view)
    if last is not None:
        step, exe = last
        lines.append(f"*Now:* {STATE_ICONS.get(exe['state'], '')} {esc(step.title)} — "
                     f"{state_word(exe['state'])}")
    nxt = view.next_steps()
    if nxt:
        cmd = nxt[0].command
        lines.append(f"*Next:* {esc(nxt[0].title)}" + (f" — `/golive {cmd}`" if cmd else ""))
    lines.append(autopilot_line(autopilot) or "*Autopilot*: off (`/golive go` starts it).")
    for d in decisions:
        owner = f"owned by <@{d['owner']}>" if d.get("owner") else \
            "nobody has taken it yet (*Take it* on its card)"
        lines.append(f"*Decision:* {esc(d['step'])} — {owner}")
    if deadline is not None:
        lines.append(f"*Next deadline:* {esc(deadline[1])} by {_when(deadline[0])}")
    ended = where_it_ended(view)
    if ended:
        lines.append(ended)
    blocks: list[Any] = [HeaderBlock(text=head[:150]), section("\n".join(lines)[:2900])]
    latest = view.latest()
    steps = [_step_line(view, s) + _approval(view, latest[s.id])
             for s in view.runbook.all_steps() if s.id in latest]
    blocks += _step_sections(steps, room=MAX_BLOCKS - len(blocks) - 1)
    blocks.append(context("Step results and logs are in this thread; approvals, decisions and "
                          "alerts are posted in the channel."))
    return head, as_dicts(blocks)
