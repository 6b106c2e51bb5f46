"""What a rehearsal leaves behind: the evidence pack (the run's audit export, the canary
report, the timings, the approvals, the channel's transcript) and the pass/fail summary."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.audit.pack import plan_entry, write_pack

REQUIRED = ("setup", "preflight", "cutover", "watches", "canary", "signoff", "finish")


def _approvals(conn: Any, run_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT a.id, a.step_id, a.action, a.requester, a.required, a.reason, a.status, "
        "a.created_at, a.decided_at, a.decided_by, a.decision_note, "
        "COALESCE(json_agg(json_build_object('user', v.user_id, 'vote', v.vote, 'at', v.at) "
        "ORDER BY v.at) FILTER (WHERE v.user_id IS NOT NULL), '[]') AS votes "
        "FROM approvals a LEFT JOIN approval_votes v ON v.approval_id = a.id "
        "WHERE a.run_id = %s GROUP BY a.id ORDER BY a.id", (run_id,)).fetchall()
    return [dict(r) for r in rows]


def canary_files(report: bytes | str | None, uploads: Iterable[tuple[str, bytes | None]]
                 ) -> dict[str, bytes | str]:
    """The canary's part of the pack: its report as ``canary-report.md`` and each chart under
    the name it was uploaded with, which is the name the report links it by."""
    files: dict[str, bytes | str] = {}
    if report:
        files["canary-report.md"] = report
    for name, content in uploads:
        if name.endswith(".png") and content and "/" not in name:
            files[name] = content
    return files


def write_evidence(r: Any) -> Path | None:
    """Write the pack for the rehearsal's newest run; None (and a red line) if it cannot."""
    import psycopg
    from psycopg.rows import dict_row

    from bot import audit
    from bot.audit.cli import export_run
    from bot.dev.sandbox.render import render_channel

    t, session = r.t, r.session
    key = session.settings.audit_key
    stamp = r.started_at.strftime("%Y%m%dT%H%M%SZ")
    out = r.args.out or (r.root / "packs" / f"rehearsal-{stamp}-{r.stack.project[-8:]}")
    try:
        with psycopg.connect(session.owner_url, autocommit=True, row_factory=dict_row) as conn:
            run = conn.execute("SELECT id, status FROM runs ORDER BY id DESC LIMIT 1"
                               ).fetchone()
            if run is None:
                t.note("no run was started, so there is no evidence pack", ok=False)
                return None
            export = f"audit-run-{run['id']}.jsonl"
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(str(out) + ".export.tmp")
            rows = export_run(conn, run["id"], key, tmp)
            approvals = _approvals(conn, run["id"])
            plans = conn.execute(
                "SELECT id, rc_tag, digest, markdown FROM plans WHERE run_id = %s ORDER BY id",
                (run["id"],)).fetchall() if conn.execute(
                "SELECT to_regclass('plans') IS NOT NULL AS ok").fetchone()["ok"] else []
        counted = r.counts_json = _counts(r)
        files: dict[str, bytes | str] = {
            export: tmp.read_bytes(),
            "counts.json": json.dumps(counted, indent=2) + "\n",
            "timings.json": json.dumps(t.as_json(), indent=2) + "\n",
            "approvals.json": json.dumps(approvals, indent=2, default=str) + "\n",
            "transcript.txt": "\n\n".join(render_channel(session.workspace, c, width=110)
                                          for c in ("C_CUTOVER", "C_INCIDENT")) + "\n"}
        tmp.unlink()
        plan_files = {f"plan-{p['rc_tag'] or 'notag'}-{p['id']}.md": p for p in plans}
        files.update({name: p["markdown"] for name, p in plan_files.items()})
        files.update(canary_files(r.canary_report, [
            (f.name, f.content) for f in list(session.workspace.files.values())]))
        write_pack(Path(out), files, {
            "kind": "golive rehearsal evidence pack", "run_id": run["id"],
            "run_status": run["status"], "audit_export": export, "audit_rows": rows,
            "audit_key_id": audit.key_id(key),
            "passed": passed(t, with_rollback=bool(r.args.with_rollback)),
            "with_rollback": bool(r.args.with_rollback), "stack_project": r.stack.project,
            "mode": r.mode, "counts": counted,
            "started_at": r.started_at.isoformat(), "written_at": datetime.now(UTC).isoformat(),
            "phases": t.as_json()["phases"],
            "plans": [plan_entry(name, p["digest"], p["markdown"], p["id"])
                      for name, p in plan_files.items()]})
    except Exception as e:  # noqa: BLE001 - the summary must still come
        t.note(f"could not write the evidence pack: {type(e).__name__}: {e}", ok=False)
        return None
    t.note(f"evidence pack written: {out} ({rows} audit rows of run #{run['id']})")
    return Path(out)


def _counts(r: Any) -> dict[str, Any] | None:
    """The rehearsal's counts (None if the night never began), also kept in the data
    directory as the newest of its mode so the other mode's summary can show them."""
    if getattr(r, "people", None) is None:
        return None
    counted = {**r.counts().as_json(), "with_rollback": bool(r.args.with_rollback),
               "passed": passed(r.t, with_rollback=bool(r.args.with_rollback)),
               "at": datetime.now(UTC).isoformat()}
    if counted["passed"]:
        try:
            _last(r, r.mode).write_text(json.dumps(counted, indent=2) + "\n")
        except OSError:
            pass
    return counted


def _last(r: Any, mode: str) -> Path:
    return Path(r.root) / f"counts-{mode}{'-rollback' if r.args.with_rollback else ''}.json"


def counts_table(r: Any) -> Any:
    """This rehearsal's counts next to the newest passing rehearsal of the other mode (same
    --with-rollback) run from the same data directory, if there is one."""
    from rich.table import Table

    from bot.dev.rehearse.counts import ROWS, load

    mine = getattr(r, "counts_json", None)
    if not mine:
        return None
    other_mode = "manual" if r.mode == "autopilot" else "autopilot"
    other = load(_last(r, other_mode))
    table = Table(title="what people did and saw (cutover channel)", title_justify="left")
    table.add_column("")
    table.add_column(f"this rehearsal ({r.mode})", justify="right")
    if other:
        table.add_column(f"last {other_mode} ({str(other.get('at', ''))[:16]})", justify="right")
    for label, key in ROWS:
        table.add_row(label, str(mine.get(key, "")),
                      *((str(other.get(key, "")),) if other else ()))
    return table


def passed(t: Any, *, with_rollback: bool) -> bool:
    """Every phase ran (the rollback too when asked for) and passed."""
    names = {p.name for p in t.phases}
    want = {*REQUIRED, *(("rollback",) if with_rollback else ())}
    return all(p.ok for p in t.phases) and want <= names


def summary(r: Any, pack: Path | None) -> int:
    """The closing table; 0 when every phase passed and the pack was written, else 1."""
    from rich.table import Table

    t = r.t
    table = Table(title="golive rehearse — summary", title_justify="left")
    for col in ("phase", "result", "seconds", "detail"):
        table.add_column(col)
    for p in t.phases:
        table.add_row(p.name, "[green]pass[/green]" if p.ok else "[red]FAIL[/red]",
                      f"{p.seconds:.1f}", p.detail[:80])
    t.console.print(table)
    counted = counts_table(r)
    if counted is not None:
        t.console.print(counted)
        c = r.counts_json
        t.console.print(f"{r.mode}: {c['human_actions']} human actions ({c['commands']} commands,"
                        f" {c['clicks']} clicks, {c['modal_submits']} modal submits), "
                        f"{c['top_level']} top-level messages, {c['thread_replies']} thread "
                        f"replies, {c['ephemeral']} ephemeral replies, {c['wall_s']:.0f} s",
                        markup=False, soft_wrap=True)
    ok = passed(t, with_rollback=bool(r.args.with_rollback)) and pack is not None
    t.console.print(f"[bold]{'PASS' if ok else 'FAIL'}[/bold] in {t.elapsed():.0f} s",
                    markup=True)
    if pack is not None:
        key = "" if os.environ.get("GOLIVE_AUDIT_KEY") else (
            f"GOLIVE_AUDIT_KEY=$(cat {r.root / 'audit.key'}) ")
        t.console.print(f"Evidence pack: {pack}", markup=False, soft_wrap=True)
        t.console.print(f"  verify it: {key}golive audit verify --file {pack}", markup=False,
                        soft_wrap=True)
    return 0 if ok else 1
