"""Block Kit builders for a whole run: `/golive status` and the end-of-cutover summary.
Pure (no I/O)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from slack_sdk.models.blocks import HeaderBlock

from bot.slack.blocks import (
    SECTION_MAX,
    STATE_ICONS,
    as_dicts,
    audit_head_context,
    context,
    duration,
    esc,
    section,
    state_word,
    summary_mrkdwn,
)
from bot.slack.preflight_blocks import status_section
from bot.slack.run_view import RunView
from runbook.model import Step


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
    later = view.passed_over().get(step.id)
    if later:  # the run went past this step: say so, with the override's reason
        why = later.get("override_reason")
        went = "went ahead" if later["state"] in ("running", "succeeded") else "was requested"
        extra += (f" — passed over: `{later['step_id']}` {went}"
                  + (f" with --override “{esc(why)}”" if why else ""))
    gate = " 🔒" if step.gated else ""
    return f"{STATE_ICONS.get(state, '')} `{step.id}`{gate} {state_word(state)}{extra}"[:400]


def where_it_ended(view: RunView) -> str | None:
    """After a rollback (done or stopped): what runs now, the schema, traffic. None without."""
    rb = view.rollback_state()
    if rb is None:
        return None
    facts, states = view.run.get("facts") or {}, view.states()
    done = [s for s in view.runbook.rollback if states.get(s.id) == "succeeded"]
    parts = []
    prev = facts.get("previous_images") or {}
    if any(s.kind == "rollback.revert_deploy" for s in done) and isinstance(prev, Mapping):
        parts.append("containers back on " + ", ".join(
            f"`{esc(svc)}` {_tag(info)}" for svc, info in sorted(prev.items())))
    if facts.get("data_restored_from"):
        sha = str(facts["data_restored_from"])[:12]
        parts.append(f"data restored from the snapshot (sha `{sha}`)")
    if facts.get("alembic_rolled_back_to"):
        parts.append(f"schema at `{esc(str(facts['alembic_rolled_back_to']))}`")
    traffic = None
    for s in done:  # the last switch the rollback flipped says how the public is served
        if s.kind == "traffic":
            traffic = "open" if str(s.params.get("action", "open")) == "open" else "closed"
        elif s.kind == "maintenance":
            on = str(s.params.get("mode", "on")) == "on"
            traffic = "closed (maintenance page on)" if on else "open"
    if traffic:
        parts.append(f"traffic {traffic}")
    if rb == "done":
        return "*Rolled back:* " + ("; ".join(parts) or "every rollback step ran")
    stopped = next((s for s in view.runbook.rollback
                    if states.get(s.id) not in ("succeeded", "skipped")), None)
    head = (f"*Rollback {'stopped' if rb == 'stopped' else 'in progress'}"
            + (f" at `{stopped.id}` ({state_word(states.get(stopped.id) or 'pending')})*"
               if stopped else "*"))
    return head + (" — so far: " + "; ".join(parts) if parts else "")


def status_blocks(view: RunView | None) -> tuple[str, list[dict]]:
    """`/golive status`: the run, its phase, each step with its state, pending approvals."""
    if view is None:
        text = "No cutover run yet. Start one with `/golive start &lt;rc-tag&gt; [sha]`."
        return text, as_dicts([section(text)])
    run = view.run
    # Steps that cannot run (not built) are neither "next" nor what keeps a phase open.
    nxt, phase = view.next_steps(), view.phase_title()
    rb = view.rollback_state()
    if rb is not None:  # after (or during) a rollback the cutover's phases are behind it
        phase = f"Rollback ({rb.replace('_', ' ')})"
    head = f"Cutover run #{run['id']} — {run['status']}"
    info = [f"*RC:* `{esc(run.get('rc_tag') or 'not set')}`"
            + (f" · sha `{run['rc_sha'][:12]}`" if run.get("rc_sha") else "")
            + f" · started by <@{run['started_by']}>",
            f"*Phase:* {phase}"]
    if nxt:
        cmd = nxt[0].command
        info.append(f"*Next:* {esc(nxt[0].title)}" + (f" — `/golive {cmd}`" if cmd else ""))
    elif run["status"] != "active":
        pass
    elif rb == "done":
        info.append("*Next:* the run was rolled back; `/golive finish` closes the run")
    elif rb == "in_progress":
        info.append("*Next:* the rollback is running; it continues by itself")
    elif rb == "stopped":
        info.append("*Next:* the rollback stopped: Retry or Mark done on its stopped step, "
                    "or `/golive rollback` resumes it")
    elif phase == "done":
        info.append("*Next:* the cutover steps are done; `/golive finish` closes the run")
    ended = where_it_ended(view)
    if ended:
        info.append(ended)
    if run["status"] != "active":
        info.append(_outcome_line(view) or "")
    blocks: list[Any] = [HeaderBlock(text=head[:150]), section("\n".join(info))]
    for phase_ in view.runbook.phases:
        lines = [_step_line(view, s) for s in phase_.steps]
        blocks.append(section(f"*{phase_.title}*\n" + "\n".join(lines)))
    if view.preflight:
        blocks.append(section(status_section(view.preflight)))
    rb = [s for s in view.runbook.rollback if s.id in view.latest()]
    if rb:
        blocks.append(section("*Rollback*\n" + "\n".join(_step_line(view, s) for s in rb)))
    pending = [a for a in view.approvals if a["status"] == "pending"]
    if pending:
        lines = [f"• {esc(a['action'])} — requested by <@{a['requester']}>, "
                 f"{len([v for v in view.votes.get(a['id'], []) if v['vote'] == 'approve'])}"
                 f"/{a['required']} approvals" for a in pending]
        blocks.append(section("*Pending approvals*\n" + "\n".join(lines)))
    else:
        blocks.append(context("No pending approvals."))
    return head, as_dicts(blocks)


def autopilot_line(row: Mapping[str, Any] | None) -> str | None:
    """The autopilot's state for status: on (who started it, what it waits for), paused (by
    whom), or stopped by itself (why and what is next); None when it never ran."""
    if row is None:
        return None
    if row["on"]:
        waits = esc(row.get("waiting_for") or "its next move")
        return (f"*Autopilot*: on, started by <@{row['started_by']}>; waiting for {waits}. "
                "`/golive pause` stops it after the running step.")
    if row.get("paused_by") and row.get("last_reason") == "paused":
        return (f"*Autopilot*: paused by <@{row['paused_by']}> (started by "
                f"<@{row['started_by']}>). `/golive go` resumes.")
    return f"*Autopilot*: off. {row.get('last_reason') or ''}".strip()


def status_extras(*, canary_line: str | None = None, watch_lines: Sequence[str] = (),
                  config_identity: str | None = None,
                  autopilot: str | None = None) -> list[dict]:
    """What `/golive status` shows below the run: the autopilot's line, the canary's line
    (GO / NO-GO with who signed, or what it waits for), each watch's state, and which config
    the bot loaded."""
    blocks: list[Any] = []
    if autopilot:
        blocks.append(section(autopilot[:SECTION_MAX]))
    if canary_line:
        blocks.append(section(canary_line[:SECTION_MAX]))
    if watch_lines:
        blocks.append(section(("*Watches*\n" + "\n".join(watch_lines))[:SECTION_MAX]))
    if config_identity:
        blocks.append(context(f"Config: `{esc(config_identity)}`"[:1900]))
    return as_dicts(blocks)


def finish_blocks(text: str, *, audit_rows: int, audit_head: str) -> list[dict]:
    """`/golive finish`: what the close did, and the audit head anchor to keep."""
    return [*as_dicts([section(text)]), audit_head_context(audit_rows, audit_head)]


def run_summary(view: RunView) -> tuple[str, list[dict]]:
    """The end-of-cutover summary: each step, who approved, how long, versions before/after."""
    run = view.run
    facts = run.get("facts") or {}
    latest = view.latest()
    lines = []
    for step in view.runbook.all_steps():
        exe = latest.get(step.id)
        if not exe:
            continue
        who = view.approved_by(exe)
        by = f" · approved by {', '.join(f'<@{u}>' for u in who)}" if who else ""
        dur = duration(exe)
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
    ended = where_it_ended(view)
    blocks: list[Any] = [HeaderBlock(text=head), section(outcome + (f"\n{ended}" if ended else "")),
                         section("\n".join(lines) or "No steps ran.")]
    if versions:
        blocks.append(section("*Versions*\n" + "\n".join(versions)))
    return head, as_dicts(blocks)


def _image(info: Any) -> str:
    if isinstance(info, Mapping):
        return f"`{info.get('image') or info.get('ref') or '?'}`"
    return f"`{info}`" if info else "—"


def _tag(info: Any) -> str:
    """A recorded image's tag (or the image) as the summary shows it."""
    if isinstance(info, Mapping):
        info = info.get("tag") or info.get("image") or info.get("ref")
    return f"`{esc(str(info))}`" if info else "—"
