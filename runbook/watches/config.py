"""The ``[watches]`` table of the bot's TOML config: the five post-cutover watches.

Unset thresholds and intervals fall back to ``[thresholds]`` (``payout_failure_rate``,
``error_rate_5xx``, ``ledger_violations``, ``watch_interval_seconds``), which is where they
lived before the watches existed; set them here to override per watch.

Nothing here knows the team's stack: a watch whose source is not configured (no log service
or container, no Prometheus queries, no payouts SQL, no ledger invariants) is listed as
*off*, never run with someone else's query.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

STRIPE_SIGNATURE_ERRORS = (
    r"SignatureVerificationError|No signatures found matching the expected signature"
    r"|Unable to extract timestamp and signatures from header|Timestamp outside the tolerance zone"
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WatchConfig(_Model):
    """Fields every watch has (Argo Rollouts' metric fields and defaults)."""

    enabled: bool = True
    interval_s: float | None = Field(None, gt=0, le=3600)
    """Seconds between measurements; unset: ``[thresholds] watch_interval_seconds``."""
    initial_delay_s: float = Field(0.0, ge=0, le=3600)
    failure_limit: int = Field(0, ge=0)
    inconclusive_limit: int = Field(0, ge=0)
    consecutive_error_limit: int = Field(4, ge=0)
    dry_run: bool = False
    rollback_trigger: bool = False
    timeout_s: float = Field(5.0, gt=0, le=120)


class LogSource(_Model):
    """Where the app's log lines come from: a container's log stream, or a file."""

    kind: Literal["docker", "file"] = "docker"
    container: str | None = None
    """Container name or ID; unset: the container of ``service``."""
    service: str | None = None
    """The compose service (of ``[target.deployer]``'s project) whose log stream is read;
    with neither ``service`` nor ``container`` (kind docker) the watches reading it are off."""
    path: Path | None = None
    docker_host: str | None = None
    reconnect_max_s: float = Field(5.0, gt=0, le=300)

    @model_validator(mode="after")
    def _path_for_files(self) -> LogSource:
        if self.kind == "file" and self.path is None:
            raise ValueError("logs.kind = 'file' needs logs.path")
        return self


class HealthWatchConfig(WatchConfig):
    interval_s: float | None = Field(5.0, gt=0, le=3600)
    base: Literal["public", "internal"] = "public"
    path: str | None = None
    """Unset: ``[target.health] path``."""
    latency_warn_ms: float = Field(1000.0, gt=0)


class WebhookWatchConfig(WatchConfig):
    logs: LogSource = Field(default_factory=LogSource)
    verified_pattern: str = r"Signature Verified"
    failure_pattern: str = r"Signature Invalid|" + STRIPE_SIGNATURE_ERRORS
    traffic_pattern: str = r" access (GET|POST|PUT|PATCH|DELETE|HEAD) "
    """Lines that mean traffic flows (warn when nothing is verified while it does)."""
    window_s: float = Field(60.0, gt=0)
    max_failure_ratio: float = Field(0.05, ge=0, le=1)
    min_events: int = Field(5, ge=1)
    min_traffic: int = Field(20, ge=1)


class PrometheusSource(_Model):
    url: str | None = None
    """The Prometheus server (``/api/v1/query``); unset: the source is off."""
    errors_query: str | None = None
    """5xx responses over ``{window}``, e.g.
    ``sum(increase(http_requests_total{{status=~"5.."}}[{window}]))``; unset: off."""
    total_query: str | None = None
    """``{window}`` becomes the window (e.g. ``30m``); braces for PromQL are doubled."""

    def missing(self) -> list[str]:
        """The keys this source still needs."""
        return [k for k in ("url", "errors_query", "total_query") if not getattr(self, k)]


class SentrySource(_Model):
    url: str = "https://sentry.io"
    organization: str = ""
    project: str = ""
    token: SecretStr = SecretStr("")
    stat: Literal["received", "generated"] = "received"
    requests_from: Literal["logs", "prometheus"] = "logs"
    """Sentry counts errors only; the request total comes from this other source."""


class ErrorBudgetWatchConfig(WatchConfig):
    source: Literal["logs", "prometheus", "sentry"] = "logs"
    budget: float | None = Field(None, gt=0, le=1)
    """Allowed 5xx ratio; unset: ``[thresholds] error_rate_5xx``."""
    long_window_s: float = Field(1800.0, gt=0)
    short_window_s: float = Field(300.0, gt=0)
    page_burn: float = Field(14.4, gt=0)
    immediate_burn: float = Field(28.8, gt=0)
    min_requests: int = Field(30, ge=1)
    logs: LogSource = Field(default_factory=LogSource)
    status_pattern: str = r" access \S+ \S+ (?P<status>\d{3}) "
    prometheus: PrometheusSource = Field(default_factory=PrometheusSource)
    sentry: SentrySource = Field(default_factory=SentrySource)


class DatabaseWatchConfig(WatchConfig):
    database_url: SecretStr | None = None
    """The target's database; unset: ``[target.migrations] database_url``."""


class PayoutWatchConfig(DatabaseWatchConfig):
    rollback_trigger: bool = True
    threshold: float | None = Field(None, ge=0, le=1)
    """Failure rate above which it is a rollback trigger; unset: ``[thresholds]`` (0.15)."""
    window_s: float = Field(300.0, gt=0)
    min_payouts: int = Field(10, ge=1)
    sql: str | None = None
    """Returns one row with ``failed`` and ``total``; ``%(window_s)s`` is the window (seconds).
    Unset: the watch is off."""


class LedgerWatchConfig(DatabaseWatchConfig):
    rollback_trigger: bool = True
    invariants: dict[str, str] = Field(default_factory=dict)
    """Name -> SQL returning the violating rows (none when the invariant holds); empty: the
    watch is off."""
    max_violations: int | None = Field(None, ge=0)
    """Violating rows tolerated; unset: ``[thresholds] ledger_violations`` (0)."""


class WatchesConfig(_Model):
    """``[watches]``: which watches run and how they judge."""

    health: HealthWatchConfig = Field(default_factory=HealthWatchConfig)
    webhooks: WebhookWatchConfig = Field(default_factory=WebhookWatchConfig)
    error_budget: ErrorBudgetWatchConfig = Field(default_factory=ErrorBudgetWatchConfig)
    payouts: PayoutWatchConfig = Field(default_factory=PayoutWatchConfig)
    ledger: LedgerWatchConfig = Field(default_factory=LedgerWatchConfig)
    history: int = Field(20, ge=2, le=100)
    """Values kept for each watch's sparkline."""
