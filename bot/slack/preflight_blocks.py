"""Block Kit builders for the preflight: the checklist lines on the step's card, the details
reply in its thread, and the section `/golive status` shows. Pure (no I/O)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from slack_sdk.models.blocks import ContextBlock, MarkdownTextObject, SectionBlock

from bot.slack.blocks import clip, esc
from runbook.checks.base import Status

RUNNING, NOT_RUN, OFF = "⏳", "▫️", "➖"


def icon(status: str) -> str:
    try:
        return Status(status).icon
    except ValueError:
        return "❔"


def check_line(row: Mapping[str, Any]) -> str:
    """``✅ prod_config: all rules pass (0.4 s)`` (escaped mrkdwn)."""
    took = f" _({row['duration_s']:.1f} s)_" if row.get("duration_s") else ""
    return f"{icon(row['status'])} *{esc(row['check_name'])}*: {esc(row['finding'])}{took}"


def checklist(planned: Sequence[str], rows: Sequence[Mapping[str, Any]], *, running: bool,
              off: Sequence[str] = ()) -> list[str]:
    """One line per planned check: its result once finished, else running / not run; then one
    per check ``[preflight] checks`` leaves out (``off``): not configured, never failing."""
    by_name = {r["check_name"]: r for r in rows}
    lines = []
    for name in dict.fromkeys([*planned, *by_name]):
        if name in by_name:
            lines.append(check_line(by_name[name]))
        else:
            lines.append(f"{RUNNING} *{esc(name)}*: running" if running
                         else f"{NOT_RUN} *{esc(name)}*: no result (the step ended first)")
    lines += [f"{OFF} *{esc(name)}*: not configured (not in `[preflight] checks`)"
              for name in off if name not in by_name]
    return lines


def details_reply(title: str, rows: Sequence[Mapping[str, Any]]) -> tuple[str, list[dict]]:
    """The thread reply under the checklist: each finished check's details and files."""
    blocks: list[Any] = [ContextBlock(elements=[MarkdownTextObject(
        text=f"Details of *{esc(title)}*")])]
    for row in rows[:45]:
        body = "\n".join(f"• {esc(d)}" for d in row["details"]) or "_no details_"
        files = "".join(f"\n📎 `{esc(f)}` attached below" for f in row["files"] or {})
        blocks.append(SectionBlock(text=MarkdownTextObject(
            text=clip(f"{check_line(row)}\n{body}{files}", 2900))))
    return f"{title}: details", [b.to_dict() for b in blocks]


def status_section(summary: Mapping[str, Any]) -> str:
    """`/golive status`: the stored preflight of the run, its SHA, age and verdict."""
    sha = summary.get("rc_sha")
    head = (f"*Preflight* — {summary['verdict']}"
            + (f" · RC sha `{esc(sha[:12])}`" if sha else " · no RC sha known")
            + (f" · {summary['age_min']} min old (max {summary['max_age']})"
               if summary.get("age_min") is not None else ""))
    return clip("\n".join([head, *summary["lines"]]), 2900)
