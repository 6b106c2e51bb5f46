"""The watches' rows (migration 0008_watches) and a watch state's JSON form.

A watch's state is saved after every measurement so that a new leader continues its history,
its counters and its message where the old one stopped.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from runbook.watches.analysis import AnalysisSpec, Counts, Measurement, WatchState

Conn = psycopg.Connection


def clean(x: Any) -> Any:
    """JSON that PostgreSQL accepts: no NaN or infinity, anything unusual as text."""
    if isinstance(x, bool) or x is None or isinstance(x, (int, str)):
        return x
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, set)):
        return [clean(v) for v in x]
    if isinstance(x, datetime):
        return x.isoformat()
    try:
        f = float(x)  # Decimal from the target's database
    except (TypeError, ValueError):
        return str(x)
    return f if math.isfinite(f) else None


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t else None


def _dt(s: str | None) -> datetime | None:
    return datetime.fromisoformat(s) if s else None


def dump(st: WatchState) -> dict[str, Any]:
    """A watch state as JSON (with what its message shows about the spec)."""
    m = st.last
    return clean({
        "started_at": _iso(st.started_at), "state": st.state, "since": _iso(st.since),
        "phase": st.phase, "phase_message": st.phase_message, "counts": vars(st.counts),
        "history": list(st.history), "tripped_at": _iso(st.tripped_at),
        "triggered": st.triggered, "next_due": _iso(st.next_due),
        "paused_why": st.paused_why,
        "interval_s": st.spec.interval_s, "dry_run": st.spec.dry_run,
        "rollback_trigger": st.spec.rollback_trigger,
        "last": None if m is None else {
            "phase": m.phase, "at": _iso(m.at), "value": m.value, "threshold": m.threshold,
            "unit": m.unit, "summary": m.summary, "warn": m.warn, "immediate": m.immediate,
            "evidence": m.evidence}})


def load(spec: AnalysisSpec, d: dict[str, Any]) -> WatchState:
    """The saved state, judged from now on by ``spec`` (the current config)."""
    m = d.get("last")
    last = None if m is None else Measurement(
        phase=m["phase"], at=_dt(m["at"]) or datetime.min, value=m.get("value"),
        threshold=m.get("threshold"), unit=m.get("unit") or "", summary=m.get("summary") or "",
        warn=m.get("warn"), immediate=bool(m.get("immediate")),
        evidence=m.get("evidence") or {})
    st = WatchState(spec=spec, started_at=_dt(d["started_at"]) or datetime.min)
    return replace(st, state=d["state"], since=_dt(d.get("since")), phase=d["phase"],
                   phase_message=d.get("phase_message") or "",
                   counts=Counts(**d.get("counts", {})), last=last,
                   history=tuple(d.get("history") or ())[-spec.history:],
                   tripped_at=_dt(d.get("tripped_at")), triggered=bool(d.get("triggered")),
                   paused_why=d.get("paused_why") or "")


# --- control ---------------------------------------------------------------------------------

def control(conn: Conn, run_id: int) -> dict | None:
    return conn.execute("SELECT * FROM watch_control WHERE run_id = %s", (run_id,)).fetchone()


def set_control(conn: Conn, *, run_id: int, desired: str, by: str, now: datetime,
                only_if_unset: bool = False) -> bool:
    """Say whether a run's watches should run; ``only_if_unset`` never overrides a person."""
    conflict = "NOTHING" if only_if_unset else (
        "UPDATE SET desired = EXCLUDED.desired, changed_by = EXCLUDED.changed_by, "
        "changed_at = EXCLUDED.changed_at")
    return conn.execute(
        "INSERT INTO watch_control (run_id, desired, changed_by, changed_at) "
        f"VALUES (%s, %s, %s, %s) ON CONFLICT (run_id) DO {conflict}",
        (run_id, desired, by, now)).rowcount == 1


# --- states ----------------------------------------------------------------------------------

def states(conn: Conn, run_id: int) -> dict[str, dict]:
    rows = conn.execute("SELECT * FROM watch_states WHERE run_id = %s ORDER BY name",
                        (run_id,)).fetchall()
    return {r["name"]: r for r in rows}


def state(conn: Conn, run_id: int, name: str) -> dict | None:
    return conn.execute("SELECT * FROM watch_states WHERE run_id = %s AND name = %s",
                        (run_id, name)).fetchone()


def save_state(conn: Conn, *, run_id: int, name: str, st: dict, by: str, now: datetime,
               measured: bool) -> None:
    conn.execute(
        "INSERT INTO watch_states AS w (run_id, name, state, ticks, measured_by, updated_at) "
        "VALUES (%(run)s, %(name)s, %(st)s, %(n)s, %(by)s, %(now)s) "
        "ON CONFLICT (run_id, name) DO UPDATE SET state = EXCLUDED.state, "
        "ticks = w.ticks + %(n)s, measured_by = EXCLUDED.measured_by, updated_at = %(now)s",
        {"run": run_id, "name": name, "st": Jsonb(st), "n": int(measured), "by": by,
         "now": now})


# --- thread replies --------------------------------------------------------------------------

EVENT_KEY = "watch:event:"


def add_line(conn: Conn, *, run_id: int, name: str, kind: str, line: str, now: datetime
             ) -> int:
    """Append ``line`` to the watch's newest reply while Slack has not got it yet (a burst
    becomes one reply, so a flapping watch cannot flood the channel), else start a new reply.
    Returns the reply's id."""
    last = conn.execute(
        "SELECT e.id, o.ts FROM watch_events e LEFT JOIN outbox o ON o.key = %s || e.id "
        "WHERE e.run_id = %s AND e.name = %s ORDER BY e.id DESC LIMIT 1",
        (EVENT_KEY, run_id, name)).fetchone()
    if last is not None and last["ts"] is None:
        conn.execute("UPDATE watch_events SET lines = lines || %s WHERE id = %s",
                     (Jsonb([line]), last["id"]))
        return int(last["id"])
    row = conn.execute("INSERT INTO watch_events (run_id, name, kind, lines, at) "
                       "VALUES (%s, %s, %s, %s, %s) RETURNING id",
                       (run_id, name, kind, Jsonb([line]), now)).fetchone()
    assert row is not None
    return int(row["id"])


def event(conn: Conn, event_id: int) -> dict | None:
    return conn.execute("SELECT * FROM watch_events WHERE id = %s", (event_id,)).fetchone()


# --- alerts ----------------------------------------------------------------------------------

def add_alert(conn: Conn, *, run_id: int | None, kind: str, watch: str | None, text: str,
              evidence: dict, by: str, now: datetime) -> int:
    row = conn.execute(
        "INSERT INTO watch_alerts (run_id, kind, watch, text, evidence, raised_by, at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (run_id, kind, watch, text, Jsonb(clean(evidence)), by, now)).fetchone()
    assert row is not None
    return int(row["id"])


def alert(conn: Conn, alert_id: int) -> dict | None:
    return conn.execute("SELECT * FROM watch_alerts WHERE id = %s", (alert_id,)).fetchone()


def alert_reason(db: Any, alert_id: int) -> str | None:
    """The rollback reason a Start rollback click on alert ``alert_id`` gives (None: no such
    alert)."""
    with db.transaction() as conn:
        a = alert(conn, alert_id)
    if a is None:
        return None
    return f"alert #{alert_id}: {a['text']}"[:500]
