"""The rollback's final timeline: what ran, when, who asked and approved, how long it took.

Pure: rows as ``bot.store.repo`` returns them (``step_executions``, ``approvals`` and
optionally ``approval_votes`` as dicts) in, structured data and plain text out. Every attempt
is its own entry, so a retry after a failure or a crash shows as such.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

DONE = frozenset({"succeeded", "skipped"})
STOPPED = frozenset({"failed", "interrupted", "cancelled"})


@dataclass(frozen=True)
class Entry:
    step_id: str
    title: str
    attempt: int
    state: str
    requested_by: str
    approved_by: tuple[str, ...]
    approval: str
    """The approval's status (``approved``, ``break-glass``, ...) or ``not gated``."""
    reason: str
    started_at: datetime | None
    finished_at: datetime | None
    duration_s: float | None
    waited_s: float | None
    """From the request to the start: approval and queueing."""
    outcome: str
    """The step's summary, or its error."""


@dataclass(frozen=True)
class Timeline:
    entries: tuple[Entry, ...]
    started_at: datetime | None
    finished_at: datetime | None
    outcome: str
    """``completed``, ``stopped at <step>: <state>``, ``in progress`` or ``not started``."""

    @property
    def total_s(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, to store with the run."""
        def iso(t: datetime | None) -> str | None:
            return t.isoformat() if t else None

        return {"outcome": self.outcome, "started_at": iso(self.started_at),
                "finished_at": iso(self.finished_at), "total_s": self.total_s,
                "entries": [{**e.__dict__, "approved_by": list(e.approved_by),
                             "started_at": iso(e.started_at),
                             "finished_at": iso(e.finished_at)} for e in self.entries]}

    def text(self) -> str:
        """Plain text, one line per attempt plus a total."""
        lines = [f"Rollback timeline: {self.outcome}"
                 + (f", {_secs(self.total_s)} in all" if self.total_s is not None else "")]
        for e in self.entries:
            when = e.started_at.strftime("%H:%M:%S") if e.started_at else "--:--:--"
            took = f" in {_secs(e.duration_s)}" if e.duration_s is not None else ""
            who = f"asked by {e.requested_by}"
            if e.approved_by:
                who += f", {e.approval} by {', '.join(e.approved_by)}"
            elif e.approval != "not gated":
                who += f", {e.approval}"
            retry = f" (attempt {e.attempt})" if e.attempt > 1 else ""
            lines.append(f"{when} {e.title}{retry}: {e.state}{took}; {who}"
                         + (f"; reason: {e.reason}" if e.reason else "")
                         + (f" — {e.outcome}" if e.outcome else ""))
        return "\n".join(lines)


def _secs(s: float | None) -> str:
    if s is None:
        return "?"
    return f"{s:.1f} s" if s < 120 else f"{int(s // 60)} min {int(s % 60):02d} s"


def _when(t: datetime | None) -> tuple[bool, Any]:
    # Rows without a time sort last; never compare a missing time with an aware one.
    return (t is None, t or 0)


def _approvers(approval: Mapping[str, Any] | None, votes: Iterable[Mapping[str, Any]]
               ) -> tuple[str, ...]:
    yes = tuple(v["user_id"] for v in sorted(votes, key=lambda v: _when(v.get("at")))
                if v.get("vote") == "approve")
    if yes:
        return yes
    if approval and approval.get("status") == "approved" and approval.get("decided_by"):
        return (str(approval["decided_by"]),)
    return ()


def build_timeline(executions: Sequence[Mapping[str, Any]],
                   approvals: Sequence[Mapping[str, Any]], *, step_ids: Sequence[str],
                   titles: Mapping[str, str] | None = None,
                   votes: Mapping[int, Sequence[Mapping[str, Any]]] | None = None) -> Timeline:
    """The timeline of the steps ``step_ids`` (the rollback plan's, in order) of one run."""
    titles = titles or {}
    wanted = set(step_ids)
    by_id = {a["id"]: a for a in approvals}
    rows = [r for r in executions if r["step_id"] in wanted]
    rows.sort(key=lambda r: (_when(r.get("started_at") or r.get("created_at")),
                             r.get("id", 0)))
    entries = []
    for r in rows:
        approval_id = r.get("approval_id")
        approval = by_id.get(approval_id) if approval_id is not None else None
        approved_by = _approvers(approval, (votes or {}).get(approval_id, ())
                                 if approval_id is not None else ())
        if approval is None:
            status = "not gated"
        elif approval.get("kind") == "break_glass":
            status = "break-glass"
        else:
            status = str(approval.get("status"))
        start, end = r.get("started_at"), r.get("finished_at")
        asked = approval.get("created_at") if approval else r.get("created_at")
        reason = r.get("override_reason") or (approval or {}).get("reason") or ""
        entries.append(Entry(
            step_id=r["step_id"], title=titles.get(r["step_id"], r["step_id"]),
            attempt=int(r.get("attempt") or 1), state=str(r["state"]),
            requested_by=str(r.get("requested_by") or "?"), approved_by=approved_by,
            approval=status, reason=str(reason),
            started_at=start, finished_at=end,
            duration_s=(end - start).total_seconds() if start and end else None,
            waited_s=(start - asked).total_seconds() if start and asked else None,
            # A step marked done keeps its error; its summary says who vouched for it.
            outcome=str((r.get("summary") if r["state"] == "succeeded" else None)
                        or r.get("error") or r.get("summary") or "")))
    latest: dict[str, Mapping[str, Any]] = {}
    for r in sorted(rows, key=lambda r: (r.get("attempt") or 1, r.get("id", 0))):
        latest[r["step_id"]] = r
    stopped = [s for s in step_ids if s in latest and latest[s]["state"] in STOPPED]
    if not rows:
        outcome = "not started"
    elif stopped:
        outcome = f"stopped at {titles.get(stopped[0], stopped[0])}: {latest[stopped[0]]['state']}"
    elif all(latest.get(s, {}).get("state") in DONE for s in step_ids):
        outcome = "completed"
    else:
        outcome = "in progress"
    starts = [e.started_at for e in entries if e.started_at]
    ends = [e.finished_at for e in entries if e.finished_at]
    first_ask = [a for a in (by_id.get(r.get("approval_id"), {}).get("created_at")
                             or r.get("created_at") for r in rows) if a]
    return Timeline(tuple(entries), min(first_ask + starts) if first_ask + starts else None,
                    max(ends) if ends and outcome != "in progress" else None, outcome)
