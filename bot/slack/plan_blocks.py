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
from runbook.plan.model import Plan
from runbook.plan.render import changes_lines, fmt_duration, short_digest, summary_lines

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


# --- one step's part, on its approval card (issue 20, item 2) ---------------------------------

def _statements(sql: str) -> int:
    """How many SQL statements ``alembic upgrade --sql`` renders (each ends with ``;``)."""
    return sum(1 for line in sql.splitlines() if line.rstrip().endswith(";"))


def step_part_lines(plan: Plan, step_id: str) -> list[str]:
    """What the step will do with today's values (mrkdwn lines, escaped): for a deploy each
    service's image, its new digest and the one it replaces; for a migration the revision
    chain and the SQL's size and squawk findings."""
    sp = plan.step(step_id)
    out: list[str] = []
    for s in sp.services:
        out.append(f"*{esc(s.service)}*: `{esc(s.image)}`\n      new `{esc(s.digest or '(unknown)')}`"
                   + (f"\n      replaces `{esc(s.current_digest)}`"
                      + (f" ({esc(s.current_image)})" if s.current_image else "")
                      if s.current_digest else "\n      replaces nothing running"))
        out += [f"      {esc(f.field)}: {esc(f.before)} → {esc(f.after)}" for f in s.changes]
    m = sp.migration
    if m is not None:
        chain = " → ".join([m.current or "base", *m.chain]) if m.chain else \
            f"{m.current or 'base'} → {m.head or '(unknown head)'}"
        out.append(f"*Database*: `{esc(chain)}`")
        if m.current == m.head and m.head is not None:
            out.append("      nothing to migrate")
        else:
            out.append(f"      {_statements(m.sql)} SQL statement(s), squawk: "
                       + (f"{len(m.findings)} finding(s)" if m.findings else "no findings"))
            out += [f"      ⚠️ {esc(f)}" for f in m.findings[:5]]
    if not out:
        out += [esc(d) for d in sp.does[:3]]
    return out


def step_part_blocks(plan: Plan, step_id: str, *, digest: str, blind: list[str],
                     file_note: str | None = None) -> list[dict]:
    """The approval card's plan section: the values the approval binds (digest included),
    what could not be resolved and whether that blocks it (``blind``: fail safe), and where
    the full SQL is. At most three blocks, each within a section's limit."""
    sp = plan.step(step_id)
    body = "*What this approves (the plan)*"
    lines = step_part_lines(plan, step_id)
    shown = 0
    for line in lines:
        candidate = f"{body}\n{line}"
        if len(candidate) > SECTION_MAX - 200:
            break
        body, shown = candidate, shown + 1
    if shown < len(lines):
        body += f"\n… and {len(lines) - shown} more line(s)" + (
            f": {file_note}" if file_note else "")
    out: list[Any] = [section(body)]
    if sp.unresolved or blind:
        why = [f"{u.what}: {u.why}" for u in sp.unresolved] or blind
        text = "*⚠️ Not resolved*\n" + "\n".join(f"• {esc(w)}" for w in why[:5])
        if blind:
            text += ("\n*Fail safe:* this step will not start while its plan is unresolved: "
                     "an approval given now is void at the claim. Request it again once the "
                     "source answers.")
        out.append(section(text[:SECTION_MAX]))
    note = f"Plan digest `{digest[:16]}`: the claim recomputes it; if anything moved, this " \
           "approval is void and this card says what."
    if sp.migration is not None and sp.migration.sql and file_note:
        note += f" Full SQL in the plan file: {file_note}."
    out.append(context(note[:SECTION_MAX]))
    return as_dicts(out)
