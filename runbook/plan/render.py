"""The plan as people read it: the Markdown file an auditor reads (:func:`render_markdown`)
and the lines the Slack card shows (:func:`summary_lines`, :func:`changes_lines`). Pure; the
values are already masked by the sources.
"""

from __future__ import annotations

from runbook.plan.digest import plan_digest, step_digest
from runbook.plan.model import MigrationPlan, Plan, ServiceChange, StepPlan

NO_HISTORY = "no history"


def fmt_duration(seconds: float | None) -> str:
    """A duration as people read it (``4.2 s``, ``3 min 05 s``); ``no history`` for None."""
    if seconds is None:
        return NO_HISTORY
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    m, s = divmod(round(seconds), 60)
    return f"{m} min {s:02d} s" if m < 60 else f"{m // 60} h {m % 60:02d} min"


def short_digest(digest: str | None, n: int = 12) -> str:
    """``sha256:`` and the digest's first ``n`` hex digits."""
    if not digest:
        return "(unknown)"
    algo, _, hexpart = digest.partition(":")
    return f"{algo}:{hexpart[:n]}" if hexpart else digest[:n]


def service_line(s: ServiceChange) -> str:
    """One service the deploy changes: what runs now → what it takes."""
    before = (f"{s.current_image or '(nothing)'} ({short_digest(s.current_digest)})"
              if s.current_image or s.current_digest else "nothing running")
    return f"{s.service}: {before} → {s.image} ({short_digest(s.digest)})"


def migration_line(m: MigrationPlan) -> str:
    """The revision chain, the SQL's length and squawk's count, on one line."""
    if m.current == m.head and m.head is not None:
        return f"database at {m.head}: nothing to migrate"
    chain = " → ".join([m.current or "base", *m.chain]) if m.chain else \
        f"{m.current or 'base'} → {m.head or '(unknown head)'}"
    sql = f", {len(m.sql.splitlines())} lines of SQL" if m.sql else ""
    lint = f", squawk: {len(m.findings)} finding(s)" if m.findings else ""
    return f"{chain}{sql}{lint}"


def summary_lines(plan: Plan) -> list[str]:
    """The card's short form: one line a step (the cutover), what changes, the totals."""
    out = []
    for s in plan.cutover:
        gate = " 🔒" if s.gated else ""
        unres = f" ⚠️ {len(s.unresolved)} unresolved" if s.unresolved else ""
        out.append(f"{s.step_id}{gate} ({fmt_duration(s.expected_s)}): "
                   f"{s.does[0] if s.does else s.title}{unres}")
    return out


def changes_lines(plan: Plan) -> list[str]:
    """What the cutover changes: each service, its configuration changes, the database."""
    out = []
    for s in plan.steps:
        if s.rollback:
            continue
        out += [service_line(c) for c in s.services]
        for c in s.services:
            out += [f"{c.service} {f.field}: {f.before} → {f.after}" for f in c.changes]
        if s.migration is not None:
            out.append(f"database: {migration_line(s.migration)}")
    return out


def _fence(text: str, lang: str = "") -> str:
    body = text.rstrip("\n")
    ticks = "```"
    while ticks in body:
        ticks += "`"
    return f"{ticks}{lang}\n{body}\n{ticks}"


def render_markdown(plan: Plan, digest: str | None = None) -> str:
    """The full plan, the file an auditor reads (and the night's Markdown attachment)."""
    digest = digest or plan_digest(plan)
    lines = [f"# Plan: {plan.runbook} → {plan.target or '(target)'} at {plan.rc_tag or '(no tag)'}",
             "",
             f"- plan digest: `{digest}`",
             f"- runbook version: `{plan.runbook_version}`",
             f"- run: {plan.run_id if plan.run_id is not None else '(none)'}",
             f"- computed at: {plan.computed_at or '(unknown)'}",
             f"- expected duration of the cutover: {fmt_duration(plan.expected_total_s)}"
             + (f" (no history for {', '.join(plan.steps_without_history)})"
                if plan.steps_without_history else ""),
             "",
             "| # | step | gate | expected | unresolved |",
             "|---|------|------|----------|------------|"]
    for i, s in enumerate(plan.steps, 1):
        gate = (f"{s.approvals} approval(s)" + (f" from {', '.join(s.groups)}" if s.groups else "")
                if s.gated else "")
        lines.append(f"| {i} | `{s.step_id}`{' (rollback)' if s.rollback else ''} | {gate} | "
                     f"{fmt_duration(s.expected_s)} | {len(s.unresolved) or ''} |")
    unresolved = plan.all_unresolved()
    if unresolved:
        lines += ["", "## Not resolved", ""]
        lines += [f"- {('`' + sid + '` ') if sid else ''}{u.what}: {u.why}" for sid, u in unresolved]
    for title, group in (("Cutover", plan.cutover), ("Rollback plan", plan.rollback_steps)):
        if not group:
            continue
        lines += ["", f"## {title}"]
        for s in group:
            lines += _step_markdown(plan, s)
    return "\n".join(lines) + "\n"


def _step_markdown(plan: Plan, s: StepPlan) -> list[str]:
    out = ["", f"### `{s.step_id}`: {s.title}", "",
           f"- kind: `{s.kind}`" + (f", command: `/golive {s.command}`" if s.command else ""),
           f"- step digest: `{step_digest(plan, s.step_id)}`",
           f"- expected: {fmt_duration(s.expected_s)}"
           + (f" (median of {s.history} attempt(s))" if s.history else "")]
    if s.gated:
        who = f"from {', '.join(s.groups)}" if s.groups else "any approver but the requester"
        out.append(f"- gate: {s.approvals} approval(s), {who}")
    out += [f"- does: {d}" for d in s.does]
    out += [f"- checks {c.name}: `{c.target}`" + (f" (expects {c.expect})" if c.expect else "")
            for c in s.checks]
    for c in s.services:
        out.append(f"- service {service_line(c)}")
        if c.digest:
            out.append(f"  - new digest: `{c.digest}`")
        if c.current_digest:
            out.append(f"  - replaces: `{c.current_digest}`")
        if c.revision:
            out.append(f"  - revision: `{c.revision}`")
        if c.config_sha256:
            out.append(f"  - compose configuration sha256: `{c.config_sha256[:16]}`")
        out += [f"  - {f.field}: {f.before} → {f.after}" for f in c.changes]
        if not c.changes:
            out.append("  - compose configuration: no change besides the image")
    m = s.migration
    if m is not None:
        out.append(f"- migration: {migration_line(m)}")
        out += [f"  - squawk: {f}" for f in m.findings]
        if m.sql:
            out += ["", "Upgrade SQL (`alembic upgrade --sql`, from the RC image):", "",
                    _fence(m.sql, "sql")]
        if m.down_sql:
            out += ["", "Downgrade SQL (the rollback's data option):", "",
                    _fence(m.down_sql, "sql")]
    if s.way_back:
        out.append(f"- way back: {s.way_back}")
    out += [f"- ⚠️ {u.what}: unresolved: {u.why}" for u in s.unresolved]
    return out
