"""The rehearsal's timeline: one line per thing that happened, with the time since the start,
a progress bar (rich) while a long step runs, and the timings the evidence pack keeps."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

T = TypeVar("T")


class PhaseFailed(Exception):
    """A phase could not finish; the message says what was seen instead."""


@dataclass
class RehearsalEntry:
    phase: str
    what: str
    at_s: float
    seconds: float | None = None
    ok: bool = True


@dataclass
class PhaseResult:
    name: str
    ok: bool = True
    seconds: float = 0.0
    detail: str = ""
    entries: list[RehearsalEntry] = field(default_factory=list)


class RehearsalTimeline:
    """Prints as it goes; ``phases`` and ``entries`` are what happened, in order."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(highlight=False, soft_wrap=True)
        self.t0 = time.monotonic()
        self.phases: list[PhaseResult] = []
        self.entries: list[RehearsalEntry] = []
        self._phase: PhaseResult | None = None

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def _stamp(self) -> str:
        s = int(self.elapsed())
        return f"[dim]{s // 60:02d}:{s % 60:02d}[/dim]"

    def phase(self, name: str, title: str) -> _Phase:
        return _Phase(self, name, title)

    def note(self, what: str, *, ok: bool = True, seconds: float | None = None) -> None:
        """One line of the timeline."""
        mark = "[green]✓[/green]" if ok else "[red]✗[/red]"
        took = f" [dim]({seconds:.1f} s)[/dim]" if seconds is not None else ""
        self.console.print(f"{self._stamp()}  {mark} {what}{took}", markup=True)
        entry = RehearsalEntry(self._phase.name if self._phase else "", what, round(self.elapsed(), 2),
                      None if seconds is None else round(seconds, 2), ok)
        self.entries.append(entry)
        if self._phase is not None:
            self._phase.entries.append(entry)

    def info(self, what: str) -> None:
        self.console.print(f"{self._stamp()}    [dim]{what}[/dim]", markup=True)

    def wait(self, label: str, check: Callable[[], T | None], *, timeout: float,
             status: Callable[[], str] | None = None, poll: float = 0.2) -> T:
        """Poll ``check`` until it returns something, with a progress bar over ``timeout``;
        raises PhaseFailed naming ``label`` (and the last status) when the time is up."""
        start = time.monotonic()
        last = ""
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                      TimeElapsedColumn(), console=self.console, transient=True,
                      disable=not self.console.is_terminal) as bar:
            task = bar.add_task(label, total=timeout)
            while True:
                found = check()
                if found is not None and found is not False:
                    return found
                waited = time.monotonic() - start
                if status is not None:
                    last = status() or last
                bar.update(task, completed=min(waited, timeout),
                           description=f"{label}{(' — ' + last[:60]) if last else ''}")
                if waited >= timeout:
                    raise PhaseFailed(f"{label}: nothing after {timeout:.0f} s"
                                      + (f" (last seen: {last})" if last else ""))
                time.sleep(poll)  # polling the sandbox for what the bot posted

    def as_json(self) -> dict[str, Any]:
        return {"total_seconds": round(self.elapsed(), 2),
                "phases": [{"name": p.name, "ok": p.ok, "seconds": round(p.seconds, 2),
                            "detail": p.detail} for p in self.phases],
                "entries": [asdict(e) for e in self.entries]}


class _Phase:
    """``with timeline.phase(...)``: a header, its entries, its time; a failure marks it red
    and is re-raised so the rehearsal stops there."""

    def __init__(self, timeline: RehearsalTimeline, name: str, title: str) -> None:
        self.t, self.result, self.title = timeline, PhaseResult(name), title

    def __enter__(self) -> PhaseResult:
        self.start = time.monotonic()
        self.t._phase = self.result
        self.t.phases.append(self.result)
        self.t.console.rule(f"[bold]{self.title}[/bold]", align="left")
        return self.result

    def __exit__(self, kind, exc, tb) -> bool:
        self.result.seconds = time.monotonic() - self.start
        if exc is not None:
            self.result.ok = False
            self.result.detail = str(exc) or type(exc).__name__
            self.t.note(f"{self.title}: {self.result.detail}", ok=False)
        self.t._phase = None
        return False
