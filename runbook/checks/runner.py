"""Run preflight checks concurrently, each in its own thread with its own timeout.

A check that hangs is reported ``fail`` ("timed out after N s") when its time is up and never
holds up the others (its thread is a daemon and is told to stop through ``ctx.cancelled``);
a check that raises is a ``fail`` with the exception as its finding. ``on_result`` is called
from the runner's thread as each check finishes, in finishing order. Pure of Slack and the DB.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from runbook.checks.base import (
    CheckContext,
    CheckFailed,
    Peers,
    PreflightResult,
    Progress,
    Status,
    masked_result,
    worst,
)

CheckFn = Callable[[CheckContext], PreflightResult]


@dataclass
class CheckSpec:
    """One check to run: its name, function, config section and timeout in seconds."""

    name: str
    fn: CheckFn
    config: Any = None
    timeout_s: float = 60.0


@dataclass
class PreflightReport:
    results: dict[str, PreflightResult]
    """By check name, in the order the checks were given."""
    started_at: float
    duration_s: float
    rc_sha: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> Status:
        return worst([r.status for r in self.results.values()])

    @property
    def green(self) -> bool:
        """No check failed or is unknown (warnings do not block)."""
        return self.status in (Status.OK, Status.WARN)


def _call(spec: CheckSpec, ctx: CheckContext) -> PreflightResult:
    t0 = ctx.clock()
    try:
        result = spec.fn(ctx)
    except CheckFailed as e:
        result = PreflightResult(spec.name, e.status, e.finding, list(e.details), facts=dict(e.facts))
    except Exception as e:  # noqa: BLE001 - a crashing check is a failed check, never a crash
        first = (str(e).strip().splitlines() or [""])[0][:300]
        result = PreflightResult(spec.name, Status.FAIL,
                             f"the check crashed: {type(e).__name__}: {first}".rstrip(": "))
    result.name = spec.name
    result.duration_s = ctx.clock() - t0
    return result


def run_checks(
    specs: Iterable[CheckSpec],
    *,
    rc_tag: str | None = None,
    rc_sha: str | None = None,
    secrets: Mapping[str, str] | None = None,
    on_result: Callable[[PreflightResult], None] | None = None,
    progress: Callable[[str, str], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> PreflightReport:
    """Run every check concurrently; return when all are done or timed out."""
    specs = list(specs)
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate check names: {names}")
    peers = Peers(set(names))
    done: queue.Queue[PreflightResult] = queue.Queue()
    started = clock()
    contexts: dict[str, CheckContext] = {}
    deadlines: dict[str, float] = {}
    for spec in specs:
        report: Progress = (lambda msg, n=spec.name: progress(n, msg)) if progress else (
            lambda _msg: None)
        ctx = CheckContext(name=spec.name, config=spec.config, rc_tag=rc_tag, rc_sha=rc_sha,
                           deadline=started + spec.timeout_s, progress=report,
                           secrets=dict(secrets or {}), peers=peers, clock=clock)
        contexts[spec.name] = ctx
        deadlines[spec.name] = ctx.deadline
        t = threading.Thread(target=lambda s=spec, c=ctx: done.put(_call(s, c)),
                             name=f"preflight-{spec.name}", daemon=True)
        t.start()

    results: dict[str, PreflightResult] = {}

    def finish(result: PreflightResult) -> None:
        ctx = contexts[result.name]
        safe = masked_result(result, ctx.secrets)
        results[result.name] = safe
        if on_result is not None:
            try:
                on_result(safe)
            except Exception:  # noqa: BLE001, S110 - a broken listener must not stop the run
                pass

    while len(results) < len(specs):
        pending = [n for n in names if n not in results]
        now = clock()
        overdue = [n for n in pending if deadlines[n] <= now]
        for name in overdue:
            spec = next(s for s in specs if s.name == name)
            contexts[name].cancelled.set()
            finish(PreflightResult(name, Status.FAIL,
                               f"timed out after {spec.timeout_s:g} s (raise "
                               f"[preflight.timeouts] {name} if it needs longer)",
                               duration_s=now - started))
        if overdue:
            continue
        wait = min(deadlines[n] for n in pending) - now
        try:
            result = done.get(timeout=max(0.01, wait))
        except queue.Empty:
            continue
        if result.name not in results:  # a result after its timeout is dropped
            finish(result)

    ordered = {n: results[n] for n in names}
    facts: dict[str, Any] = {}
    for r in ordered.values():
        facts.update(r.facts)
    return PreflightReport(results=ordered, started_at=started, duration_s=clock() - started,
                           rc_sha=rc_sha or facts.get("rc_sha"), facts=facts)
