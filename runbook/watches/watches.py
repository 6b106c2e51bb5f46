"""The five post-cutover watches (runbook 2C and the rollback triggers of section 3).

Each has ``spec`` (its ``AnalysisSpec``) and ``measure(now) -> Measurement``; ``measure``
never raises: anything that stops it from measuring is a measurement Error, which the
analysis counts apart from failures.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
import psycopg
from psycopg.rows import dict_row

from runbook.health_contract import subset_mismatches
from runbook.watches.analysis import AnalysisSpec, Measurement
from runbook.watches.burnrate import BurnPolicy, evaluate
from runbook.watches.logs import LineCounter, LogTail
from runbook.watches.sources import CountsSource, SourceError


def _error(now: datetime, summary: str, **evidence: Any) -> Measurement:
    return Measurement("Error", now, summary=summary, evidence=evidence)


class HealthWatch:
    """GET the health endpoint: status, expected body fields and latency."""

    def __init__(self, spec: AnalysisSpec, url: str, *, expect: dict[str, Any],
                 latency_warn_ms: float, timeout_s: float = 5.0, verify_tls: bool = True):
        self.spec, self.url, self.expect = spec, url, expect
        self.latency_warn_ms = latency_warn_ms
        self.client = httpx.Client(timeout=timeout_s, verify=verify_tls)

    def measure(self, now: datetime) -> Measurement:
        """One GET; a refused connection or a timeout is an Error, a bad answer a Failure."""
        t0 = time.perf_counter()
        try:
            r = self.client.get(self.url)
        except httpx.HTTPError as e:
            return _error(now, f"GET {self.url}: {type(e).__name__}", url=self.url)
        ms = (time.perf_counter() - t0) * 1000
        ev = {"url": self.url, "status": r.status_code, "latency_ms": round(ms, 1)}
        try:
            body = r.json()
        except ValueError:
            body = None
        # the team's contract ([target.health] expect): a nested subset, dotted paths shown
        wrong = {path: got for path, got, _ in subset_mismatches(self.expect, body)}
        if r.status_code != 200 or wrong:
            detail = ", ".join(f"{k}={v!r}" for k, v in wrong.items())
            return Measurement("Failed", now, value=ms, threshold=self.latency_warn_ms,
                               unit="ms", summary=f"HTTP {r.status_code}"
                               + (f" ({detail})" if detail else ""), evidence=ev)
        warn = (f"slow: {ms:.0f} ms > {self.latency_warn_ms:g} ms"
                if ms > self.latency_warn_ms else None)
        return Measurement("Successful", now, value=ms, threshold=self.latency_warn_ms,
                           unit="ms", summary=f"HTTP 200 in {ms:.0f} ms", warn=warn,
                           evidence=ev)


class WebhookWatch:
    """Signature Verified vs signature failures in the app's logs, per window."""

    def __init__(self, spec: AnalysisSpec, tail: LogTail, counter: LineCounter, *,
                 window_s: float, max_failure_ratio: float, min_events: int, min_traffic: int):
        self.spec, self.tail, self.counter = spec, tail, counter
        self.window_s, self.max_ratio = window_s, max_failure_ratio
        self.min_events, self.min_traffic = min_events, min_traffic

    def measure(self, now: datetime) -> Measurement:
        """Failure ratio over the window; a broken log stream is an Error."""
        problem = self.tail.problem()
        if problem:
            return _error(now, problem, source=self.tail.name)
        c = self.counter.count(self.window_s, now.timestamp())
        ok, bad, traffic = c["verified"], c["failed"], c["traffic"]
        n = ok + bad
        ratio = bad / n if n else 0.0
        ev = {"verified": ok, "failed": bad, "traffic_lines": traffic,
              "window_s": self.window_s, "source": self.tail.name}
        text = f"{bad} failed / {n} signatures in {self.window_s:g} s"
        if n >= self.min_events and ratio > self.max_ratio:
            return Measurement("Failed", now, value=ratio, threshold=self.max_ratio,
                               unit="ratio", summary=text, evidence=ev)
        warn = None
        if ok == 0 and traffic >= self.min_traffic:
            warn = f"no Signature Verified in {self.window_s:g} s while {traffic} requests flowed"
        return Measurement("Successful", now, value=ratio, threshold=self.max_ratio,
                           unit="ratio", summary=text, warn=warn, evidence=ev)


class ErrorBudgetWatch:
    """5xx burn rate over a long and a short window (SRE Workbook, adapted to 30 minutes)."""

    def __init__(self, spec: AnalysisSpec, source: CountsSource, policy: BurnPolicy):
        self.spec, self.source, self.policy = spec, source, policy

    def measure(self, now: datetime) -> Measurement:
        """Page (Failed) at 14.4× over both windows; 28.8× over the short one is immediate."""
        t = now.timestamp()
        try:
            long = self.source.counts(self.policy.long_window_s, t)
            short = self.source.counts(self.policy.short_window_s, t)
        except SourceError as e:
            return _error(now, str(e), source=self.source.description)
        v = evaluate(long, short, self.policy)
        ev = {"source": self.source.description, "long_burn": round(v.long_burn, 2),
              "short_burn": round(v.short_burn, 2), "long": vars(long), "short": vars(short),
              "budget": self.policy.budget}
        value = v.short_burn if math.isfinite(v.short_burn) else None
        common = {"value": value, "threshold": self.policy.page_burn, "unit": "× burn",
                  "evidence": ev}
        if v.immediate:
            return Measurement("Failed", now, immediate=True,
                               summary=f"{v.summary} ≥ {self.policy.immediate_burn:g}× "
                                       "(immediate rollback trigger)", **common)
        if v.page:
            return Measurement("Failed", now, summary=v.summary, **common)
        warn = None
        if v.enough_data and max(v.long_burn, v.short_burn) >= self.policy.page_burn:
            warn = "burning fast over one window"
        return Measurement("Successful", now, summary=v.summary, warn=warn, **common)


def _connect(url: str, timeout_s: float) -> psycopg.Connection:
    ms = int(timeout_s * 1000)
    return psycopg.connect(url, connect_timeout=max(1, int(timeout_s)), autocommit=True,
                           row_factory=dict_row,
                           options=f"-c statement_timeout={ms} "
                                   "-c default_transaction_read_only=on")


class PayoutWatch:
    """Payout failure rate from a SQL query on the target database."""

    def __init__(self, spec: AnalysisSpec, database_url: str, sql: str, *, threshold: float,
                 window_s: float, min_payouts: int, timeout_s: float = 5.0):
        self.spec, self.url, self.sql = spec, database_url, sql
        self.threshold, self.window_s, self.min_payouts = threshold, window_s, min_payouts
        self.timeout_s = timeout_s

    def measure(self, now: datetime) -> Measurement:
        """Above the threshold (runbook: 15 %) it is a failure, and a rollback trigger."""
        try:
            with _connect(self.url, self.timeout_s) as conn:
                row = conn.execute(self.sql, {"window_s": self.window_s}).fetchone()
            failed, total = int(row["failed"] or 0), int(row["total"] or 0)
        except psycopg.Error as e:
            return _error(now, f"payout query failed: {_pg_error(e)}", query=self.sql)
        except (TypeError, KeyError, ValueError):
            return _error(now, "payout query must return one row with failed and total",
                          query=self.sql)
        rate = failed / total if total else 0.0
        ev = {"failed": failed, "total": total, "window_s": self.window_s, "query": self.sql}
        text = f"{failed}/{total} payouts failed in {self.window_s:g} s ({rate:.0%})"
        if total < self.min_payouts:
            return Measurement("Successful", now, value=rate, threshold=self.threshold,
                               unit="ratio", summary=text + f"; fewer than {self.min_payouts}",
                               evidence=ev)
        phase = "Failed" if rate > self.threshold else "Successful"
        return Measurement(phase, now, value=rate, threshold=self.threshold, unit="ratio",
                           summary=text, evidence=ev)


class LedgerWatch:
    """SQL invariants on the ledger; each query returns the rows that violate it."""

    def __init__(self, spec: AnalysisSpec, database_url: str, invariants: dict[str, str], *,
                 max_violations: int, timeout_s: float = 5.0, sample_rows: int = 5):
        self.spec, self.url, self.invariants = spec, database_url, invariants
        self.max_violations, self.timeout_s = max_violations, timeout_s
        self.sample_rows = sample_rows

    def measure(self, now: datetime) -> Measurement:
        """Any violation beyond ``max_violations`` (default 0) fails: a rollback trigger."""
        found: dict[str, Any] = {}
        total = 0
        try:
            with _connect(self.url, self.timeout_s) as conn, conn.transaction():
                # one snapshot for every invariant, so they judge the same ledger
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                for name, sql in self.invariants.items():
                    rows = conn.execute(sql).fetchall()
                    total += len(rows)
                    if rows:
                        found[name] = {"rows": len(rows), "query": sql,
                                       "sample": [_jsonable(r) for r in
                                                  rows[: self.sample_rows]]}
        except psycopg.Error as e:
            return _error(now, f"ledger invariants failed to run: {_pg_error(e)}")
        ev = {"violations": found, "checked": list(self.invariants)}
        if total > self.max_violations:
            names = ", ".join(f"{k} ({v['rows']})" for k, v in found.items())
            return Measurement("Failed", now, value=total, threshold=self.max_violations,
                               unit="violations", summary=f"violated: {names}", evidence=ev)
        return Measurement("Successful", now, value=total, threshold=self.max_violations,
                           unit="violations",
                           summary=f"{len(self.invariants)} invariants hold"
                           if not total else f"{total} tolerated", evidence=ev)


def _pg_error(e: psycopg.Error) -> str:
    # the first line only: libpq messages can echo the connection target, never the password
    return f"{type(e).__name__}: {str(e).strip().splitlines()[0][:160] if str(e) else ''}"


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in row.items():
        if isinstance(v, Decimal):  # SUM() of bigints
            v = int(v) if v == v.to_integral_value() else float(v)
        out[k] = v if isinstance(v, int | float | str | bool | None) else str(v)
    return out


Measure = Callable[[datetime], Measurement]
