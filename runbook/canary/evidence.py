"""Evidence for the canary window: webhook signatures, the error budget and health history.

The inputs are the watches' own parts (``runbook.watches``): a ``WebhookTap`` subscribes to
the webhook watch's ``LogTail`` and keeps the signature lines (webhooks often arrive before
anyone reports the reference, so lines are kept, not just counted); the error budget asks any
``CountsSource`` (access log, Prometheus, Sentry) for the 5xx since traffic opened; health
samples come from the health watch's measurements. The functions that judge are pure.
"""

from __future__ import annotations

import re
import statistics
import threading
from collections import deque
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from runbook.canary.state import CheckResult, Sample
from runbook.watches.analysis import Measurement
from runbook.watches.config import WebhookWatchConfig
from runbook.watches.logs import LineCounter, LogTail, pattern_classifier
from runbook.watches.sources import CountsSource, SourceError

_WEBHOOK_DEFAULTS = WebhookWatchConfig()


def _names(reference: str) -> re.Pattern[str]:
    # the reference as a whole token: payout `7` must not match event `.../17`
    return re.compile(r"(?<![\w-])" + re.escape(reference) + r"(?![\w-])")


def webhook_evidence(lines: Iterable[str], references: Sequence[str], *, min_verified: int = 1,
                     verified_pattern: str = _WEBHOOK_DEFAULTS.verified_pattern,
                     failure_pattern: str = _WEBHOOK_DEFAULTS.failure_pattern) -> CheckResult:
    """Count ``Signature Verified`` and failed-signature lines naming each reference."""
    verified_rx, failed_rx = re.compile(verified_pattern), re.compile(failure_pattern)
    refs = [r for r in references if r]
    per_ref = {r: {"verified": 0, "failed": 0} for r in refs}
    total = {"verified": 0, "failed": 0}
    matchers = {r: _names(r) for r in refs}
    for line in lines:
        kind = ("verified" if verified_rx.search(line)
                else "failed" if failed_rx.search(line) else None)
        if kind is None:
            continue
        total[kind] += 1
        for r, rx in matchers.items():
            if rx.search(line):
                per_ref[r][kind] += 1
    verified = sum(c["verified"] for c in per_ref.values())
    failed = sum(c["failed"] for c in per_ref.values())
    details = {"references": per_ref, "verified": verified, "failed": failed,
               "window_verified": total["verified"], "window_failed": total["failed"],
               "min_verified": min_verified}
    each = ", ".join(f"`{r}` {c['verified']} verified" + (f" / {c['failed']} failed"
                                                          if c["failed"] else "")
                     for r, c in per_ref.items())
    window = (f"; window: {total['verified']} verified, {total['failed']} failed signatures")
    if not refs:
        return CheckResult(False, "no transaction reference verified yet" + window, details)
    if failed:
        return CheckResult(False, f"{failed} webhook(s) for the canary failed signature "
                                  f"verification ({each}){window}", details)
    if verified < min_verified:
        return CheckResult(False, f"{verified} Signature Verified for the canary's webhooks, "
                                  f"need {min_verified} ({each}){window}", details)
    return CheckResult(True, f"{verified} Signature Verified ({each}){window}", details)


class WebhookTap(LineCounter):
    """A ``LineCounter`` for the webhook watch's ``LogTail`` that also keeps signature lines."""

    def __init__(self, *, verified_pattern: str = _WEBHOOK_DEFAULTS.verified_pattern,
                 failure_pattern: str = _WEBHOOK_DEFAULTS.failure_pattern,
                 keep_lines: int = 20000, keep_s: float = 7200.0):
        super().__init__(pattern_classifier({"verified": verified_pattern,
                                             "failed": failure_pattern}), keep_s=keep_s)
        self.verified_pattern, self.failure_pattern = verified_pattern, failure_pattern
        self._lines: deque[tuple[float, str]] = deque(maxlen=keep_lines)
        self._lines_lock = threading.Lock()

    @classmethod
    def on(cls, tail: LogTail, **kw: Any) -> WebhookTap:
        """A tap subscribed to ``tail`` (start it at canary open: it sees lines from then)."""
        tap = cls(**kw)
        tail.subscribe(tap)
        return tap

    def feed(self, lines: list[str], at: float) -> None:
        """Count as the watches do, and keep the lines that are signature evidence."""
        kept = [ln for ln in lines if self.classify(ln)]
        if kept:
            with self._lines_lock:
                self._lines.extend((at, ln) for ln in kept)
        super().feed(lines, at)

    def lines(self, since: float | None = None) -> list[str]:
        """The kept signature lines received at or after ``since`` (epoch seconds)."""
        with self._lines_lock:
            return [ln for at, ln in self._lines if since is None or at >= int(since)]

    def evidence(self, references: Sequence[str], *, since: float | None = None,
                 min_verified: int = 1) -> CheckResult:
        """:func:`webhook_evidence` over the lines seen since ``since``."""
        return webhook_evidence(self.lines(since), references, min_verified=min_verified,
                                verified_pattern=self.verified_pattern,
                                failure_pattern=self.failure_pattern)


def error_budget_evidence(source: CountsSource, *, since: datetime, now: datetime,
                          budget: float, max_consumption: float = 1.0) -> CheckResult:
    """5xx and requests since ``since`` (traffic opened) and the share of the budget used."""
    window_s = max(1.0, (now - since).total_seconds())
    try:
        c = source.counts(window_s, now.timestamp())
    except SourceError as e:
        return CheckResult(False, f"could not measure ({source.description}): {e}",
                           {"source": source.description})
    consumption = (c.ratio / budget) if budget > 0 else (float("inf") if c.errors else 0.0)
    details = {"source": source.description, "errors_5xx": int(c.errors),
               "requests": int(c.total), "error_rate": round(c.ratio, 6), "budget": budget,
               "consumption": round(consumption, 4), "max_consumption": max_consumption,
               "window_s": round(window_s), "since": since.isoformat()}
    line = (f"{int(c.errors)} 5xx of {int(c.total)} requests since traffic opened "
            f"({c.ratio:.2%}, budget {budget:.2%}): {consumption:.0%} of the budget used")
    if consumption > max_consumption:
        return CheckResult(False, f"{line}, over the {max_consumption:.0%} allowed", details)
    return CheckResult(True, line, details)


def sample_from(measurement: Measurement, *, error_rate: float | None = None) -> Sample:
    """A health sample from one health-watch measurement (latency, up or not)."""
    latency = measurement.value if measurement.phase != "Error" else None
    return Sample(at=measurement.at, latency_ms=latency,
                  ok=measurement.phase == "Successful", error_rate=error_rate)


def health_summary(samples: Sequence[Sample]) -> dict[str, Any]:
    """Counts and latency percentiles of the window's health samples (for the report)."""
    lat = sorted(s.latency_ms for s in samples if s.latency_ms is not None)
    rates = [s.error_rate for s in samples if s.error_rate is not None]

    def pct(p: float) -> float | None:
        if not lat:
            return None
        return round(lat[min(len(lat) - 1, round(p * (len(lat) - 1)))], 1)

    return {"samples": len(samples), "failures": sum(1 for s in samples if not s.ok),
            "latency_p50_ms": pct(0.5), "latency_p95_ms": pct(0.95),
            "latency_max_ms": round(lat[-1], 1) if lat else None,
            "latency_mean_ms": round(statistics.fmean(lat), 1) if lat else None,
            "error_rate_max": round(max(rates), 6) if rates else None,
            "first": samples[0].at.isoformat() if samples else None,
            "last": samples[-1].at.isoformat() if samples else None}
