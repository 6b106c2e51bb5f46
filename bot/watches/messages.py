"""What the channel sees of the watches, rendered from the database when the sender sends it.

``watch:run:<run>:<name>``: one message per watch, updated in place (state, last value
against its threshold, a sparkline, since when). ``watch:event:<id>``: a reply in that
message's thread for each state change (a burst of changes shares one reply).
``watch:alert:<id>:<channel>``: a rollback trigger or security incident, with its evidence
and a Start rollback button, in the cutover and the incident channels.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import psycopg

from bot.ids import Action
from bot.slack.blocks import esc
from bot.watches import store
from runbook.watches.analysis import sparkline

Content = dict[str, Any]

TITLES = {"health": "Health", "webhooks": "Webhook signatures",
          "error_budget": "Error budget (5xx burn rate)", "payouts": "Payout failure rate",
          "ledger": "Ledger invariants"}
EMOJI = {"pending": "⏳", "ok": "🟢", "warn": "🟡", "breach": "🔴", "inconclusive": "❔",
         "error": "⚠️", "problem": "⛔", "paused": "⏸", "off": "⚪"}


def title(name: str) -> str:
    return TITLES.get(name, name)


def fmt(value: float | None, unit: str) -> str:
    """A value in its unit: ratios as percentages, milliseconds rounded."""
    if value is None:
        return "n/a"
    if unit == "ratio":
        return f"{value * 100:.1f}%"
    if unit == "ms":
        return f"{value:.0f} ms"
    if unit.startswith("×"):
        return f"{value:.1f}{unit}"
    return f"{value:g}{(' ' + unit) if unit else ''}"


def _time(iso: str | None) -> str:
    if not iso:
        return "?"
    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%H:%M:%S UTC")


def watch_line(name: str, st: dict) -> str:
    """One line per watch, for its message's head and ``/golive watch list``."""
    if "problem" in st:
        return f"{EMOJI['problem']} *{title(name)}*: cannot run: {esc(st['problem'])}"
    if "off" in st:
        return f"{EMOJI['off']} *{title(name)}*: *off*: {esc(st['off'])}"
    why = f" ({esc(st['paused_why'])})" if st.get("state") == "paused" and st.get(
        "paused_why") else ""
    last = st.get("last") or {}
    value = (f"{fmt(last.get('value'), last.get('unit', ''))} "
             f"(threshold {fmt(last.get('threshold'), last.get('unit', ''))})"
             if last else "not measured yet")
    dry = " (dry run)" if st.get("dry_run") else ""
    return (f"{EMOJI.get(st['state'], '•')} *{title(name)}*{dry}: *{st['state']}*{why} since "
            f"{_time(st.get('since'))} · last {value} · `{sparkline(st.get('history') or []) or '—'}`")


def render_watch(conn: psycopg.Connection, ref: str, data: Any) -> Content | None:
    """A watch's message: its state, last value vs threshold, sparkline and since when."""
    run_s, _, name = ref.partition(":")
    row = store.state(conn, int(run_s), name)
    if row is None:
        return None
    st = row["state"]
    head = watch_line(name, st)
    ctl = store.control(conn, int(run_s))
    lines = []
    last = st.get("last")
    if last and last.get("summary"):
        lines.append(esc(last["summary"]) + (f" — {esc(last['warn'])}" if last.get("warn")
                                             else ""))
    if "problem" not in st and "off" not in st:
        c = st.get("counts") or {}
        lines.append(f"every {st.get('interval_s', 0):g} s · {c.get('count', 0)} measurements, "
                     f"{c.get('failed', 0)} failed, {c.get('error', 0)} errors"
                     + (f" · {esc(st['phase_message'])}" if st.get("phase_message") else "")
                     + (" · rollback trigger" if st.get("rollback_trigger") else ""))
    if ctl is not None and ctl["desired"] == "stopped":
        lines.append(f"⏸ stopped by {_who(ctl['changed_by'])}")
    blocks: list[dict] = [{"type": "section", "text": {"type": "mrkdwn", "text": head}}]
    if lines:
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": "\n".join(lines)[:3000]}]})
    text = f"{title(name)}: {st.get('state', 'off' if 'off' in st else 'problem')}"
    return {"text": text, "blocks": blocks}


def render_event(conn: psycopg.Connection, ref: str, data: Any) -> Content | None:
    """A reply in a watch's thread: the state changes it saw (a burst shares one reply)."""
    row = store.event(conn, int(ref))
    if row is None:
        return None
    lines = [esc(x) for x in row["lines"]]
    shown = lines if len(lines) <= 20 else [*lines[:5], f"… {len(lines) - 10} more …",
                                            *lines[-5:]]
    text = "\n".join(shown)
    return {"text": text[:3000],
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}]}


def _who(by: str) -> str:
    return f"<@{by}>" if by[:1] in "UW" and by.isalnum() else esc(by)


def render_alert(conn: psycopg.Connection, ref: str, data: Any) -> Content | None:
    """A rollback trigger or security incident: what, the evidence, and Start rollback."""
    a = store.alert(conn, int(ref.partition(":")[0]))
    if a is None:
        return None
    if a["kind"] == "security_incident":
        head = f"🚨 *Security incident declared* by {_who(a['raised_by'])}"
    else:
        head = f"🚨 *Rollback trigger: {esc(title(a['watch'] or ''))}*"
    evidence = json.dumps(a["evidence"], indent=1, sort_keys=True, default=str)
    if len(evidence) > 2500:
        evidence = evidence[:2500] + "\n…"
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn",
                                     "text": f"{head}\n{esc(a['text'])}"[:3000]}},
        {"type": "section", "text": {"type": "mrkdwn",
                                     "text": f"*Evidence* (at {a['at'].astimezone(UTC):%H:%M:%S} UTC)\n"
                                             f"```{esc(evidence)}```"}},
        {"type": "actions", "block_id": "golive.alert", "elements": [{
            "type": "button", "action_id": str(Action.ALERT_ROLLBACK), "value": str(a["id"]),
            "style": "danger", "text": {"type": "plain_text", "text": "Start rollback"},
            "confirm": {"title": {"type": "plain_text", "text": "Start rollback?"},
                        "text": {"type": "plain_text",
                                 "text": "Request the rollback plan (needs approval)."},
                        "confirm": {"type": "plain_text", "text": "Request rollback"},
                        "deny": {"type": "plain_text", "text": "Back"}}}]},
        {"type": "context", "elements": [{"type": "mrkdwn", "text":
                                          "The watches never start a rollback on their own."}]},
    ]
    kind = "Security incident" if a["kind"] == "security_incident" else "Rollback trigger"
    return {"text": f"{kind}: {esc(a['text'])}"[:3000], "blocks": blocks}


def register(sender: Any) -> None:
    """Tell the outbox sender how to render the watches' messages."""
    sender.register("watch:run", render_watch)
    sender.register("watch:event", render_event)
    sender.register("watch:alert", render_alert)
