"""Build the configured watches and hold their state: the entry point for the bot's shell.

The shell schedules ``tick(name, now)`` every ``spec.interval_s`` (first at
``state.next_due``), renders ``states[name]`` into the watch's message and acts on the
returned events (``state_changed`` -> thread reply, ``rollback_trigger`` -> alert with the
evidence, ``needs_person`` -> ask, ``measurement_error`` -> say so).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from runbook.target import TargetConfig
from runbook.target_deployers import ComposeDeployerConfig
from runbook.watches.analysis import (
    AnalysisSpec,
    Measurement,
    WatchEvent,
    WatchState,
    new_state,
    pause,
    step,
)
from runbook.watches.burnrate import BurnPolicy
from runbook.watches.config import LogSource, WatchConfig, WatchesConfig
from runbook.watches.logs import (
    LineCounter,
    LogTail,
    compose_container,
    docker_opener,
    file_opener,
    pattern_classifier,
    status_classifier,
)
from runbook.watches.sources import CountsSource, LogCounts, PrometheusCounts, SentryCounts
from runbook.watches.watches import (
    ErrorBudgetWatch,
    HealthWatch,
    LedgerWatch,
    PayoutWatch,
    WebhookWatch,
)

NAMES = ("health", "webhooks", "error_budget", "payouts", "ledger")


class Watch(Protocol):
    spec: AnalysisSpec

    def measure(self, now: datetime) -> Measurement: ...


class _Config(Protocol):
    watches: WatchesConfig
    thresholds: Any
    target: TargetConfig


@dataclass
class WatchSet:
    watches: dict[str, Watch]
    tails: list[LogTail] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)
    """Watches that could not be built (e.g. no database URL), with the reason."""
    off: dict[str, str] = field(default_factory=dict)
    """Enabled watches whose source is not configured, with what to set: listed as off."""
    states: dict[str, WatchState] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_config(cls, cfg: _Config, *, target: TargetConfig | None = None) -> WatchSet:
        """Every enabled watch of ``cfg.watches`` with ``[thresholds]`` as the defaults."""
        return _build(cfg.watches, cfg.thresholds, target or cfg.target)

    def start(self, now: datetime) -> None:
        """Start the log tails and (re)start every watch's analysis at ``now``."""
        for t in self.tails:
            t.start()
        with self._lock:
            self.states = {n: new_state(w.spec, now) for n, w in self.watches.items()}

    def stop(self) -> None:
        for t in self.tails:
            t.stop()

    def tick(self, name: str, now: datetime, *, paused: str = ""
             ) -> tuple[WatchState, list[WatchEvent]]:
        """Measure one watch and fold the result into its state; with ``paused`` (why), do
        not measure: the watch shows ``paused`` until its next measurement."""
        if paused:
            with self._lock:
                new, events = pause(self.states[name], now, paused)
                self.states[name] = new
            return new, events
        m = self.watches[name].measure(now)
        with self._lock:
            new, events = step(self.states[name], m, now)
            self.states[name] = new
        return new, events


def _spec(name: str, w: WatchConfig, default_interval: float, history: int) -> AnalysisSpec:
    return AnalysisSpec(name=name, interval_s=w.interval_s or default_interval,
                        initial_delay_s=w.initial_delay_s, failure_limit=w.failure_limit,
                        inconclusive_limit=w.inconclusive_limit,
                        consecutive_error_limit=w.consecutive_error_limit, dry_run=w.dry_run,
                        rollback_trigger=w.rollback_trigger, history=history)


class _Tails:
    """One tail per distinct log source, shared by the watches that read it."""

    def __init__(self, target: TargetConfig):
        self.target = target
        self.by_key: dict[str, LogTail] = {}

    def get(self, src: LogSource) -> LogTail:
        key = src.model_dump_json()
        if key not in self.by_key:
            self.by_key[key] = LogTail(*self._opener(src), reconnect_max_s=src.reconnect_max_s)
        return self.by_key[key]

    def _opener(self, src: LogSource) -> tuple[str, Any]:
        if src.kind == "file" and src.path is not None:  # the config requires the path
            return f"file:{src.path}", file_opener(src.path)
        dep = self.target.deployer
        host = src.docker_host or (dep.docker_host if isinstance(dep, ComposeDeployerConfig)
                                   else None)
        if src.container:
            return f"container:{src.container}", docker_opener(src.container, docker_host=host)
        assert isinstance(dep, ComposeDeployerConfig) and src.service  # _logs_unset checked
        return (f"compose:{dep.project}/{src.service}",
                docker_opener(compose_container(dep.project, src.service, host), docker_host=host))


def _logs_unset(src: LogSource, table: str, target: TargetConfig) -> str:
    """Why a log source cannot be read as configured ("" when it can)."""
    if src.kind == "file" or src.container:
        return ""
    if not src.service:
        return (f"no log source: set {table} logs = {{ service = \"...\" }} (a compose "
                "service), a container, or kind = \"file\" with a path")
    if not isinstance(target.deployer, ComposeDeployerConfig):
        return (f"{table} logs names service {src.service!r} but [target.deployer] is not set: "
                "name the container instead")
    return ""


def unconfigured(wc: WatchesConfig, target: TargetConfig) -> dict[str, str]:
    """Enabled watches whose source is not configured -> what to set (they are off). Pure:
    the bot lists them as off, `golive config check` can warn about them."""
    off: dict[str, str] = {}
    h = wc.health
    base = target.public_url if h.base == "public" else target.internal_url
    if h.enabled and not (h.path or target.health.path):
        off["health"] = "no health path: set [target.health] path or [watches.health] path"
    elif h.enabled and not base:
        off["health"] = f"no URL: set [target] {h.base}_url"
    wh = wc.webhooks
    if wh.enabled and _logs_unset(wh.logs, "[watches.webhooks]", target):
        off["webhooks"] = _logs_unset(wh.logs, "[watches.webhooks]", target)
    eb = wc.error_budget
    logs_src = eb.source == "logs" or (eb.source == "sentry" and eb.sentry.requests_from == "logs")
    prom_src = eb.source == "prometheus" or (eb.source == "sentry"
                                             and eb.sentry.requests_from == "prometheus")
    if eb.enabled and logs_src and _logs_unset(eb.logs, "[watches.error_budget]", target):
        off["error_budget"] = _logs_unset(eb.logs, "[watches.error_budget]", target)
    elif eb.enabled and prom_src and eb.prometheus.missing():
        off["error_budget"] = ("Prometheus not configured: set [watches.error_budget.prometheus] "
                               + ", ".join(eb.prometheus.missing()))
    elif eb.enabled and eb.source == "sentry" and not (eb.sentry.organization
                                                       and eb.sentry.project):
        off["error_budget"] = ("Sentry not configured: set [watches.error_budget.sentry] "
                               "organization and project")
    if wc.payouts.enabled and not wc.payouts.sql:
        off["payouts"] = "no query: set [watches.payouts] sql (one row: failed, total)"
    if wc.ledger.enabled and not wc.ledger.invariants:
        off["ledger"] = ("no invariants: set [watches.ledger] invariants (name = SQL returning "
                         "the violating rows)")
    return off


def _build(wc: WatchesConfig, thresholds: Any, target: TargetConfig) -> WatchSet:
    default_interval = float(getattr(thresholds, "watch_interval_seconds", 30))
    tails = _Tails(target)
    watches: dict[str, Watch] = {}
    problems: dict[str, str] = {}
    off = unconfigured(wc, target)

    def spec(name: str, w: WatchConfig) -> AnalysisSpec:
        return _spec(name, w, default_interval, wc.history)

    h = wc.health
    base = target.public_url if h.base == "public" else target.internal_url
    if h.enabled and "health" not in off:
        watches["health"] = HealthWatch(
            spec("health", h), base + (h.path or target.health.path or ""),
            expect=dict(target.health.expect), latency_warn_ms=h.latency_warn_ms,
            timeout_s=h.timeout_s, verify_tls=target.probe.verify_tls)

    wh = wc.webhooks
    if wh.enabled and "webhooks" not in off:
        tail = tails.get(wh.logs)
        counter = tail.subscribe(LineCounter(pattern_classifier({
            "verified": wh.verified_pattern, "failed": wh.failure_pattern,
            "traffic": wh.traffic_pattern})))
        watches["webhooks"] = WebhookWatch(
            spec("webhooks", wh), tail, counter, window_s=wh.window_s,
            max_failure_ratio=wh.max_failure_ratio, min_events=wh.min_events,
            min_traffic=wh.min_traffic)

    eb = wc.error_budget
    if eb.enabled and "error_budget" not in off:
        def log_counts() -> LogCounts:
            tail = tails.get(eb.logs)
            return LogCounts(tail, tail.subscribe(LineCounter(status_classifier(
                eb.status_pattern), keep_s=eb.long_window_s + 60)))

        def prom_counts() -> PrometheusCounts:
            p = eb.prometheus
            return PrometheusCounts(p.url or "", p.errors_query or "", p.total_query or "",
                                    timeout_s=eb.timeout_s)

        source: CountsSource
        if eb.source == "logs":
            source = log_counts()
        elif eb.source == "prometheus":
            source = prom_counts()
        else:
            s = eb.sentry
            source = SentryCounts(s.url, s.organization, s.project, s.token.get_secret_value(),
                                  log_counts() if s.requests_from == "logs" else prom_counts(),
                                  stat=s.stat, timeout_s=eb.timeout_s)
        budget = eb.budget or float(getattr(thresholds, "error_rate_5xx", 0.02))
        watches["error_budget"] = ErrorBudgetWatch(spec("error_budget", eb), source, BurnPolicy(
            budget=budget, long_window_s=eb.long_window_s, short_window_s=eb.short_window_s,
            page_burn=eb.page_burn, immediate_burn=eb.immediate_burn,
            min_requests=eb.min_requests))

    db_default = target.migrations.database_url
    for name in ("payouts", "ledger"):
        w = getattr(wc, name)
        if not w.enabled or name in off:
            continue
        url_s = w.database_url or db_default
        url = url_s.get_secret_value() if url_s is not None else ""
        if not url:
            problems[name] = (f"no database: set [watches.{name}] database_url or "
                              "[target.migrations] database_url")
            continue
        if name == "payouts":
            threshold = (w.threshold if w.threshold is not None
                         else float(getattr(thresholds, "payout_failure_rate", 0.15)))
            watches[name] = PayoutWatch(spec(name, w), url, w.sql, threshold=threshold,
                                        window_s=w.window_s, min_payouts=w.min_payouts,
                                        timeout_s=w.timeout_s)
        else:
            limit = (w.max_violations if w.max_violations is not None
                     else int(getattr(thresholds, "ledger_violations", 0)))
            watches[name] = LedgerWatch(spec(name, w), url, dict(w.invariants),
                                        max_violations=limit, timeout_s=w.timeout_s)
    return WatchSet(watches=watches, tails=list(tails.by_key.values()), problems=problems,
                    off=off)
