"""The canary report: a Jinja2 Markdown template filled with everything measured, a short
summary for the thread, and an up-front template check for ``golive config check``.

Templates render in Jinja2's sandbox with ``StrictUndefined``: a placeholder that names
nothing is an error, found by :func:`check_template` before the canary, never mid-canary.
Everything leaving here is masked with the caller's secrets mapping.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, meta
from jinja2.sandbox import SandboxedEnvironment

from runbook.adapters.redact import mask
from runbook.canary.evidence import health_summary
from runbook.canary.machine import checklist, outcome_text
from runbook.canary.state import (
    ITEMS,
    MARKS,
    TITLES,
    Balances,
    CanaryState,
    Item,
    Sample,
    Signature,
)

Secrets = Mapping[str, str] | Iterable[str] | None
SUMMARY_MAX_CHARS = 2900  # a section block's text is capped at 3000 characters


@dataclass(frozen=True)
class SkippedStep:
    """A step of the run skipped by a two-person decision (a deviation), for the report."""
    step_id: str
    title: str
    asked_by: str | None
    approved_by: str | None
    reason: str
    at: datetime | None

    @classmethod
    def of(cls, row: Mapping[str, Any], title: str) -> SkippedStep:
        """From a skip's decision row (``bot.engine.decisions``: its ``deviations``)."""
        return cls(step_id=row["step_id"], title=title, asked_by=row["skip_requested_by"],
                   approved_by=row["chosen_by"], at=row["chosen_at"],
                   reason=row["skip_reason"] or row.get("note") or "")


def _cell(text: str) -> str:
    """Free text as one Markdown table cell: one line, no column break."""
    return " ".join(text.split()).replace("|", "\\|") or "-"


def _env() -> SandboxedEnvironment:
    # Markdown, not HTML: nothing to escape; the sandbox keeps a team's template harmless
    return SandboxedEnvironment(undefined=StrictUndefined, autoescape=False,
                                keep_trailing_newline=True, trim_blocks=True,
                                lstrip_blocks=True)


def _ts(at: datetime | str | None) -> str:
    if at is None:
        return "-"
    if isinstance(at, str):
        at = datetime.fromisoformat(at)
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _money_view(state: CanaryState, item: Item, kind: str,
                names: Mapping[str, str] | None) -> dict[str, Any]:
    d = item.details

    def bal(raw: Any) -> dict[str, str]:
        if not isinstance(raw, Mapping):
            return {"available": "-", "held": "-", "at": "-"}
        b = Balances.model_validate(raw)
        return {"available": state.money(b.available), "held": state.money(b.held),
                "at": _ts(b.at)}

    expected = state.deposit_cents if kind == "deposit" else state.withdraw_cents
    return {"status": item.status, "mark": MARKS[item.status], "summary": item.summary or "-",
            "reference": item.reference or "-", "transaction_id": d.get("transaction_id", "-"),
            "amount": state.money(d.get("amount_cents")), "expected": state.money(expected),
            "fee": state.money(state.fee_cents if kind == "withdrawal" else 0),
            "reported": state.money(item.reported_cents), "ledger_status": d.get("status", "-"),
            "before": bal(d.get("before")), "after": bal(d.get("after")),
            "by": _who(item.by, names), "at": _ts(item.at), "attempts": item.attempts,
            "transaction_at": _ts(d.get("transaction_at"))}


def _who(user: str | None, names: Mapping[str, str] | None = None) -> str:
    if not user:
        return "-"
    name = (names or {}).get(user)
    return f"@{name} ({user})" if name else user  # a file does not render a <@U…> mention


_MENTION = re.compile(r"<@([UW][A-Z0-9_]+)>")


def _named(text: str, names: Mapping[str, str] | None) -> str:
    """The machine's texts mention people (``<@U…>``, for Slack); a file names them."""
    return _MENTION.sub(lambda m: _who(m.group(1), names), text)


def report_context(state: CanaryState, *, chart: str = "", database: str = "",
                   now: datetime | None = None, names: Mapping[str, str] | None = None,
                   skipped: Sequence[SkippedStep] = ()) -> dict[str, Any]:
    """Everything the template may use (see runbook/templates/canary_report.md); ``names``
    maps user IDs to display names (a file does not render ``<@U…>`` mentions); ``skipped``:
    the run's skipped steps."""
    it = state.items
    eb, wh, lg = it["error_budget"].details, it["webhooks"].details, it["ledger"].details
    refs = wh.get("references") or {}
    sig = [{"user": _who(s.user_id, names), "role": s.role or "-", "decision": s.decision,
            "at": _ts(s.at), "note": s.note or "-"} for s in state.signatures]
    end = state.decided_at or now or datetime.now(UTC)
    return {
        "canary": {"outcome": state.outcome, "outcome_text": _named(outcome_text(state), names),
                   "opened_by": _who(state.opened_by, names), "opened_at": _ts(state.opened_at),
                   "traffic_opened_at": _ts(state.traffic_opened_at),
                   "decided_at": _ts(state.decided_at), "run_id": state.run_id or "-",
                   "account": state.account, "currency": state.currency,
                   "rollback_offered": state.rollback_offered, "database": database or "-",
                   "window": {"start": _ts(state.traffic_opened_at or state.opened_at),
                              "end": _ts(end)}},
        "versions": dict(state.versions) or {"app": "-"},
        "deposit": _money_view(state, it["deposit"], "deposit", names),
        "withdrawal": _money_view(state, it["withdrawal"], "withdrawal", names),
        "ledger": {"status": it["ledger"].status, "mark": MARKS[it["ledger"].status],
                   "summary": it["ledger"].summary or "-",
                   "invariants": list(lg.get("invariants") or []),
                   "violations": sum(len(v) for v in (lg.get("violations") or {}).values())},
        "webhooks": {"status": it["webhooks"].status, "mark": MARKS[it["webhooks"].status],
                     "summary": it["webhooks"].summary or "-",
                     "verified": wh.get("verified", "-"), "failed": wh.get("failed", "-"),
                     "window_verified": wh.get("window_verified", "-"),
                     "window_failed": wh.get("window_failed", "-"),
                     "references": [{"reference": r, "verified": c.get("verified", 0),
                                     "failed": c.get("failed", 0)} for r, c in refs.items()]},
        "error_budget": {"status": it["error_budget"].status,
                         "mark": MARKS[it["error_budget"].status],
                         "summary": it["error_budget"].summary or "-",
                         "errors_5xx": eb.get("errors_5xx", "-"),
                         "requests": eb.get("requests", "-"),
                         "error_rate": _pct(eb.get("error_rate"), 3),
                         "budget": _pct(eb.get("budget"), 2),
                         "consumption": _pct(eb.get("consumption"), 0),
                         "source": eb.get("source", "-")},
        "health": _health(state.samples),
        "signoff": {"status": it["signoff"].status, "mark": MARKS[it["signoff"].status],
                    "summary": _named(it["signoff"].summary or "-", names),
                    "required": state.required_signoffs,
                    "signatures": sig},
        "items": [{"title": TITLES[k], "status": it[k].status, "mark": MARKS[it[k].status],
                   "summary": _named(it[k].summary or "-", names)} for k in ITEMS],
        "log": [{"at": _ts(e.at), "user": _who(e.user, names) if e.user else "golive",
                 "text": _named(e.text, names)} for e in state.log],
        "skipped": [{"step": s.step_id, "title": _cell(s.title),
                     "asked_by": _who(s.asked_by, names),
                     "approved_by": _who(s.approved_by, names),
                     "reason": _cell(s.reason), "at": _ts(s.at)} for s in skipped],
        "chart": chart,
        "generated_at": _ts(now or datetime.now(UTC)),
    }


def _health(samples: tuple[Sample, ...]) -> dict[str, Any]:
    h = health_summary(samples)
    h.update(first=_ts(h["first"]), last=_ts(h["last"]),
             error_rate_max=_pct(h["error_rate_max"], 2))
    return {k: ("-" if v is None else v) for k, v in h.items()}


def _pct(value: Any, digits: int) -> str:
    return f"{float(value):.{digits}%}" if isinstance(value, int | float) else "-"


DEVIATIONS = """
## Skipped steps (deviations)

Each was skipped by a two-person decision: the steps after it went on as if it had succeeded.

| Step | Asked by | Approved by | Why | When |
|---|---|---|---|---|
{% for s in skipped %}
| `{{ s.step }}` {{ s.title }} | {{ s.asked_by }} | {{ s.approved_by }} | {{ s.reason }} | {{ s.at }} |
{% endfor %}
"""
"""Added to a team's template that does not place ``skipped`` itself, when a step was skipped:
a deviation is in every report (the shipped template places its own)."""


def render_report(state: CanaryState, template: str, *, secrets: Secrets = None,
                  chart: str = "", database: str = "", now: datetime | None = None,
                  names: Mapping[str, str] | None = None,
                  skipped: Sequence[SkippedStep] = ()) -> str:
    """The full report text, masked; ``template`` is the template's source."""
    # a reason is masked before it is made a table cell, which could split a secret
    skipped = [replace(s, reason=mask(s.reason, secrets)) for s in skipped]
    if skipped and "skipped" not in meta.find_undeclared_variables(_env().parse(template)):
        template = template.rstrip("\n") + "\n" + DEVIATIONS  # a team's template never drops one
    text = _env().from_string(template).render(
        report_context(state, chart=chart, database=database, now=now, names=names,
                       skipped=skipped))
    return mask(text, secrets)


def summary_lines(state: CanaryState, *, secrets: Secrets = None) -> list[str]:
    """The thread summary: outcome, then one line per checklist item (plain text, masked)."""
    head = f"Canary {state.outcome if state.outcome != 'open' else 'in progress'}"
    lines = [head + (f" — {outcome_text(state)}" if state.outcome != "open" else ""),
             *checklist(state)]
    out, used = [], 0
    for line in (mask(ln, secrets) for ln in lines):
        line = line if len(line) <= 400 else line[:399] + "…"
        if used + len(line) + 1 > SUMMARY_MAX_CHARS:
            out.append("… (the full report is attached)")
            break
        out.append(line)
        used += len(line) + 1
    return out


def load_template(path: Path) -> str:
    """The template's source (UTF-8)."""
    return path.read_text(encoding="utf-8")


def check_template(source: str, *, name: str = "template") -> list[str]:
    """Problems with a report template (syntax, unknown placeholders); empty when it is fine.

    Top-level names are compared with the context; nested ones (``deposit.refrence``) are
    caught by rendering against full sample canaries, one GO and one NO-GO, so both sides of
    an ``{% if %}`` on the outcome are exercised.
    """
    env = _env()
    try:
        ast = env.parse(source)
    except TemplateSyntaxError as e:
        return [f"{name} line {e.lineno}: {e.message}"]
    known = set(report_context(_sample("GO"), skipped=SAMPLE_SKIPPED))
    unknown = sorted(meta.find_undeclared_variables(ast) - known)
    if unknown:
        return [f"{name}: unknown placeholder(s) {', '.join(unknown)}; known: "
                + ", ".join(sorted(known))]
    problems = []
    for outcome in ("GO", "NO-GO", "open"):
        try:
            env.from_string(source).render(report_context(_sample(outcome), chart="chart.png",
                                                          skipped=SAMPLE_SKIPPED))
        except TemplateError as e:
            msg = f"{name}: {e.message or type(e).__name__}"
            if msg not in problems:
                problems.append(msg)
    return problems


SAMPLE_SKIPPED = (SkippedStep(step_id="smoke", title="Smoke tests", asked_by="U1",
                              approved_by="U2", reason="run by hand",
                              at=datetime(2025, 1, 1, 11, 0, tzinfo=UTC)),)


def _sample(outcome: str) -> CanaryState:
    """A canary with every field filled, for checking templates."""
    t0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    bal = {"available": 1000, "held": 0, "exists": True, "at": t0.isoformat()}
    money = {"transaction_id": "1", "amount_cents": 1000, "status": "settled",
             "before": bal, "after": bal, "transaction_at": t0.isoformat()}
    details = {"deposit": money, "withdrawal": money,
               "ledger": {"invariants": ["x"], "violations": {}},
               "webhooks": {"references": {"r1": {"verified": 1, "failed": 0}}, "verified": 1,
                            "failed": 0, "window_verified": 1, "window_failed": 0},
               "error_budget": {"errors_5xx": 0, "requests": 10, "error_rate": 0.0,
                                "budget": 0.02, "consumption": 0.0, "source": "logs"}}
    items = {k: Item(key=k, status="ok", summary="ok", reference="r1", reported_cents=1000,
                     by="U1", at=t0, details=details.get(k, {})) for k in ITEMS}
    sigs = (Signature(user_id="U1", decision="sign", at=t0, role="engineering", note="n"),
            Signature(user_id="U2", decision="reject" if outcome == "NO-GO" else "sign",
                      at=t0, role="finance", note="n"))
    return CanaryState(
        run_id=1, opened_by="U0", opened_at=t0, traffic_opened_at=t0, account="canary",
        currency="USD", deposit_cents=1000, withdraw_cents=1000, items=items,
        signatures=sigs if outcome != "open" else (), outcome=outcome,  # type: ignore[arg-type]
        decided_at=t0 + timedelta(minutes=5) if outcome != "open" else None,
        rollback_offered=outcome == "NO-GO", versions={"app": "v2"},
        samples=(Sample(at=t0, latency_ms=12.0, error_rate=0.0),))


def check_template_file(path: Path) -> list[str]:
    """:func:`check_template` for a file, reporting a missing or unreadable file too."""
    try:
        source = load_template(path)
    except (OSError, UnicodeDecodeError) as e:
        return [f"canary template {path}: cannot read it ({type(e).__name__})"]
    return check_template(source, name=f"canary template {path}")
