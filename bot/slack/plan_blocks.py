"""Block Kit builder for the plan's summary card (`/golive plan`). Pure (no I/O).

The card is what an approver at 02:00 reads: the steps with their expected durations, what
changes (digests old → new, the database's revision chain), the total, the digest, and what
could not be resolved and why. The whole plan (the SQL, every check's URL) is the Markdown file
posted in the card's thread. Within Slack's limits: at most 50 blocks, every section under
3,000 characters (long lists are cut with "... and N more: see the file").
"""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import HeaderBlock

from bot.slack.blocks import MAX_BLOCKS, SECTION_MAX, as_dicts, context, esc, section
from runbook.plan.model import (
    Plan,
    changes_lines,
    fmt_duration,
    short_digest,
    summary_lines,
)

_MAX_LINES = 40


def _lines_section(title: str, lines: list[str], filename: str) -> Any:
    """A titled section of bullet lines, cut to fit one section."""
    body = f"*{title}*"
    shown = 0
    for line in lines[:_MAX_LINES]:
        candidate = f"{body}\n• {esc(line)}"
        if len(candidate) > SECTION_MAX - 80:
            break
        body, shown = candidate, shown + 1
    if shown < len(lines):
        body += f"\n… and {len(lines) - shown} more: see `{esc(filename)}`"
    return section(body)


def plan_card(plan: Plan, digest: str, *, filename: str) -> tuple[str, list[dict]]:
    """(notification text, blocks) of the plan's summary card."""
    tag = plan.rc_tag or "(no tag)"
    text = (f"Plan for {tag}: {len(plan.cutover)} steps, expected "
            f"{fmt_duration(plan.expected_total_s)}, digest {digest[:12]}")
    blocks: list[Any] = [HeaderBlock(text=f"Plan: {tag}"[:150])]
    total = fmt_duration(plan.expected_total_s)
    without = plan.steps_without_history
    blocks.append(section(
        f"*{esc(plan.runbook)}* → *{esc(plan.target or 'target')}*"
        + (f", run {plan.run_id}" if plan.run_id is not None else "")
        + f"\n*Expected duration:* {total}"
        + (f" (no history for {len(without)} step(s))" if without else "")
        + f"\n*Plan digest:* `{digest}`"))
    blocks.append(_lines_section("Steps", summary_lines(plan), filename))
    changes = changes_lines(plan)
    if changes:
        blocks.append(_lines_section("What changes", changes, filename))
    unresolved = [f"{sid + ': ' if sid else ''}{u.what}: {u.why}"
                  for sid, u in plan.all_unresolved()]
    if unresolved:
        blocks.append(_lines_section(f"⚠️ Not resolved ({len(unresolved)})", unresolved,
                                     filename))
    rb = plan.rollback_steps
    if rb:
        blocks.append(_lines_section("Way back (rollback plan)", [
            f"{s.step_id}: {s.does[0] if s.does else s.title}" for s in rb], filename))
    deploy = [s for s in plan.cutover if s.services]
    if deploy:
        digests = ", ".join(f"{c.service} {short_digest(c.digest)}"
                            for s in deploy for c in s.services)
        blocks.append(context(esc(f"new digests: {digests}")[:SECTION_MAX]))
    blocks.append(context(f"The whole plan (SQL, checks, ways back): `{esc(filename)}` in "
                          "the thread. Computed " + esc(plan.computed_at or "now") + "."))
    return text, as_dicts(blocks[:MAX_BLOCKS])
