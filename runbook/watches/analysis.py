"""A watch's verdict, with Argo Rollouts' analysis semantics and defaults. Pure: no I/O.

What we follow (Argo Rollouts, ``docs/features/analysis.md`` and the controller's
``assessMetricFailureInconclusiveOrError`` in ``analysis/analysis.go``):

- every measurement is Successful, Failed, Inconclusive or Error;
- the metric is Failed when ``failed > failureLimit`` (default 0: the first failure fails);
- Inconclusive when ``inconclusive > inconclusiveLimit`` (default 0): a person decides;
- Error when ``consecutiveErrors > consecutiveErrorLimit`` (default 4, so the 5th consecutive
  error counts); any measurement that is not an Error resets the consecutive count, and an
  error is never counted as a failure;
- when several hold, the later check wins (Error over Inconclusive over Failed), as in Argo;
- ``initialDelay`` postpones the first measurement, ``interval`` spaces them;
- ``dryRun``: the metric is measured and shown but never changes the outcome (here: no
  rollback trigger fires; a ``dry_run_trigger`` event says what would have fired).

Where a live 30-minute watch departs from a one-shot AnalysisRun: Argo stops a run once it
is Failed. A watch keeps measuring so the channel sees it recover, so the *displayed* state
follows the latest measurement (``breach`` while the limit is exceeded and the latest
measurement failed, ``ok`` again after a success) while ``phase`` keeps Argo's cumulative
verdict and ``tripped_at`` says when it first tripped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

Phase = Literal["Successful", "Failed", "Inconclusive", "Error"]
RunPhase = Literal["Pending", "Running", "Failed", "Inconclusive", "Error"]
Display = Literal["pending", "ok", "warn", "breach", "inconclusive", "error", "paused"]
EventKind = Literal["state_changed", "rollback_trigger", "dry_run_trigger", "needs_person",
                    "measurement_error", "recovered"]

SPARKS = "▁▂▃▄▅▆▇█"
ERROR_MARK = "·"


@dataclass(frozen=True)
class Measurement:
    """One measurement: its phase, the value against its threshold, and the evidence."""

    phase: Phase
    at: datetime
    value: float | None = None
    threshold: float | None = None
    unit: str = ""
    summary: str = ""
    warn: str | None = None
    """A Successful measurement that still deserves a look (shown as ``warn``)."""
    immediate: bool = False
    """Fires the rollback trigger now, whatever ``failure_limit`` says (e.g. a 28.8 burn)."""
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AnalysisSpec:
    """How a watch judges its measurements (Argo's metric fields, same defaults)."""

    name: str
    interval_s: float = 30.0
    initial_delay_s: float = 0.0
    failure_limit: int = 0
    inconclusive_limit: int = 0
    consecutive_error_limit: int = 4
    dry_run: bool = False
    rollback_trigger: bool = False
    """A breach of this watch is a runbook rollback trigger (section 3)."""
    history: int = 20


@dataclass(frozen=True)
class Counts:
    count: int = 0
    successful: int = 0
    failed: int = 0
    inconclusive: int = 0
    error: int = 0
    consecutive_error: int = 0


@dataclass(frozen=True)
class WatchState:
    """Everything the channel message shows, plus Argo's counters."""

    spec: AnalysisSpec
    started_at: datetime
    state: Display = "pending"
    since: datetime | None = None
    phase: RunPhase = "Pending"
    phase_message: str = ""
    counts: Counts = Counts()
    last: Measurement | None = None
    history: tuple[float | None, ...] = ()
    tripped_at: datetime | None = None
    triggered: bool = False
    """The rollback trigger fired during the current breach (it fires once per breach)."""
    paused_why: str = ""
    """Why the watch is ``paused`` (e.g. the run's planned maintenance); "" otherwise."""

    @property
    def next_due(self) -> datetime:
        """When the next measurement is due (``initial_delay`` first, then ``interval``)."""
        if self.last is None:
            return self.started_at + timedelta(seconds=self.spec.initial_delay_s)
        return self.last.at + timedelta(seconds=self.spec.interval_s)

    def sparkline(self) -> str:
        """The recent values as ▁▂▃▅▇ (``·`` for a measurement error)."""
        return sparkline(self.history)


@dataclass(frozen=True)
class WatchEvent:
    kind: EventKind
    watch: str
    at: datetime
    text: str
    evidence: dict[str, Any] = field(default_factory=dict)


def new_state(spec: AnalysisSpec, started_at: datetime) -> WatchState:
    """A watch that has not measured yet."""
    return WatchState(spec=spec, started_at=started_at, since=started_at)


def sparkline(values: tuple[float | None, ...] | list[float | None]) -> str:
    """Scale the finite values onto eight blocks; a flat series sits on the lowest one."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 0.0)
    out = []
    for v in values:
        if v is None or not math.isfinite(v):
            out.append(ERROR_MARK)
        elif hi == lo:
            out.append(SPARKS[0])
        else:
            out.append(SPARKS[min(len(SPARKS) - 1, int((v - lo) / (hi - lo) * len(SPARKS)))])
    return "".join(out)


def _count(c: Counts, phase: Phase) -> Counts:
    c = replace(c, count=c.count + 1)
    if phase == "Error":
        return replace(c, error=c.error + 1, consecutive_error=c.consecutive_error + 1)
    c = replace(c, consecutive_error=0)
    if phase == "Successful":
        return replace(c, successful=c.successful + 1)
    if phase == "Failed":
        return replace(c, failed=c.failed + 1)
    return replace(c, inconclusive=c.inconclusive + 1)


def assess(spec: AnalysisSpec, c: Counts) -> tuple[RunPhase, str]:
    """Argo's verdict from the counters; the later check wins, as in the controller."""
    phase: RunPhase = "Running"
    msg = ""
    if c.failed > spec.failure_limit:
        phase, msg = "Failed", f"failed ({c.failed}) > failure_limit ({spec.failure_limit})"
    if c.inconclusive > spec.inconclusive_limit:
        phase, msg = "Inconclusive", (f"inconclusive ({c.inconclusive}) > inconclusive_limit "
                                      f"({spec.inconclusive_limit})")
    if c.consecutive_error > spec.consecutive_error_limit:
        phase, msg = "Error", (f"consecutive errors ({c.consecutive_error}) > "
                               f"consecutive_error_limit ({spec.consecutive_error_limit})")
    return phase, msg


def _display(prev: WatchState, m: Measurement, phase: RunPhase) -> Display:
    if phase == "Error":
        return "error"
    if m.phase == "Error":
        # an error is not a failure: below the limit the watch keeps its last judgement
        return prev.state if prev.state not in ("pending", "paused") else "pending"
    if m.phase == "Failed":
        return "breach" if phase == "Failed" or m.immediate else "warn"
    if m.phase == "Inconclusive":
        return "inconclusive" if phase == "Inconclusive" else "warn"
    return "warn" if m.warn else "ok"


def pause(state: WatchState, now: datetime, why: str) -> tuple[WatchState, list[WatchEvent]]:
    """Not measured on purpose (e.g. during the run's planned maintenance): shown ``paused``
    with ``why``, never counted, never a trigger; the next measurement resumes the watch."""
    if state.state == "paused" and state.paused_why == why:
        return state, []
    new = replace(state, state="paused", since=now if state.state != "paused" else state.since,
                  paused_why=why, triggered=False)
    text = f"{state.spec.name}: {state.state} → paused ({why})"
    return new, [WatchEvent("state_changed", state.spec.name, now, text, {"paused": why})]


def step(state: WatchState, m: Measurement, now: datetime) -> tuple[WatchState, list[WatchEvent]]:
    """Fold one measurement into the watch; return the new state and what to tell people."""
    spec = state.spec
    counts = _count(state.counts, m.phase)
    phase, msg = assess(spec, counts)
    display = _display(state, m, phase)
    history = (*state.history, m.value if m.phase != "Error" else None)[-spec.history:]
    new = replace(state, counts=counts, phase=phase, phase_message=msg, last=m,
                  history=history, state=display, paused_why="",
                  since=now if display != state.state else state.since)
    events: list[WatchEvent] = []
    evidence = {"value": m.value, "threshold": m.threshold, "unit": m.unit,
                "measured_at": m.at.isoformat(), "counts": vars(counts), **m.evidence}
    if display != state.state:
        events.append(WatchEvent("state_changed", spec.name, now,
                            f"{spec.name}: {state.state} → {display}"
                            + (f" ({m.summary})" if m.summary else ""), evidence))
        if display == "ok" and state.state in ("breach", "error", "inconclusive", "warn"):
            events.append(WatchEvent("recovered", spec.name, now, f"{spec.name} is back to ok",
                                evidence))
    if display != "breach":
        new = replace(new, triggered=False)
    # once per breach; an immediate measurement during a breach that did not trigger still does
    if display == "breach" and not state.triggered and (spec.rollback_trigger or m.immediate):
        why = "immediate rollback trigger" if m.immediate else msg
        kind: EventKind = "dry_run_trigger" if spec.dry_run else "rollback_trigger"
        verb = "would fire (dry run)" if spec.dry_run else "fired"
        events.append(WatchEvent(kind, spec.name, now,
                            f"Rollback trigger {verb}: {spec.name}: {m.summary or why} ({why})",
                            {**evidence, "reason": why}))
        new = replace(new, triggered=True)
    if display == "breach" and new.tripped_at is None:
        new = replace(new, tripped_at=now)
    if m.phase == "Inconclusive" and counts.inconclusive == spec.inconclusive_limit + 1:
        events.append(WatchEvent("needs_person", spec.name, now,
                            f"{spec.name} is inconclusive, a person must decide: {msg}",
                            evidence))
    if m.phase == "Error" and counts.consecutive_error == spec.consecutive_error_limit + 1:
        events.append(WatchEvent("measurement_error", spec.name, now,
                            f"{spec.name} cannot measure: {msg}"
                            + (f" (last: {m.summary})" if m.summary else ""), evidence))
    if spec.dry_run:
        # dry run: shown to people, never the watch's outcome (Argo: no effect on the run)
        new = replace(new, phase="Running" if phase in ("Failed", "Inconclusive") else phase)
    return new, events
