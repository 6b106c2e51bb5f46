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
    """Run this watch; false: it is off (listed as off, never measured)."""
    interval_s: float | None = Field(None, gt=0, le=3600)
    """Seconds between measurements; unset: ``[thresholds] watch_interval_seconds``."""
    initial_delay_s: float = Field(0.0, ge=0, le=3600)
    """Seconds after the watches start before this one's first measurement."""
    failure_limit: int = Field(0, ge=0)
    """Failed measurements tolerated; one more and the watch breaches (Argo Rollouts'
    failureLimit)."""
    inconclusive_limit: int = Field(0, ge=0)
    """Inconclusive measurements tolerated before a person is asked (Argo Rollouts'
    inconclusiveLimit)."""
    consecutive_error_limit: int = Field(4, ge=0)
    """Measurement errors in a row tolerated before the watch shows "error" (an error is never a
    failure)."""
    dry_run: bool = False
    """Post what the watch sees, but never fire its rollback trigger."""
    rollback_trigger: bool = False
    """A breach raises the rollback alarm with Start rollback in the cutover and incident
    channels."""
    timeout_s: float = Field(5.0, gt=0, le=120)
    """Seconds one measurement may take; an overrun is an error, not a failure."""


class LogSource(_Model):
    """Where the app's log lines come from: a container's log stream, or a file."""

    kind: Literal["docker", "file"] = "docker"
    """"docker" (a container's log stream) or "file" (a log file on the bot's host)."""
    container: str | None = None
    """Container name or ID; unset: the container of ``service``."""
    service: str | None = None
    """The compose service (of ``[target.deployer]``'s project) whose log stream is read;
    with neither ``service`` nor ``container`` (kind docker) the watches reading it are off."""
    path: Path | None = None
    """kind = "file": the log file the bot reads."""
    docker_host: str | None = None
    """DOCKER_HOST for the log stream; unset: the bot's environment."""
    reconnect_max_s: float = Field(5.0, gt=0, le=300)
    """Longest wait (seconds) between reconnects when the log stream drops."""

    @model_validator(mode="after")
    def _path_for_files(self) -> LogSource:
        if self.kind == "file" and self.path is None:
            raise ValueError("logs.kind = 'file' needs logs.path")
        return self


class HealthWatchConfig(WatchConfig):
    interval_s: float | None = Field(5.0, gt=0, le=3600)
    base: Literal["public", "internal"] = "public"
    """"public" (through the ingress, what customers see) or "internal" (the app directly)."""
    path: str | None = None
    """Unset: ``[target.health] path``."""
    latency_warn_ms: float = Field(1000.0, gt=0)
    """An answer slower than this many milliseconds is shown as a warning."""


class WebhookWatchConfig(WatchConfig):
    logs: LogSource = Field(default_factory=LogSource)
    """Where the app's log lines come from: a compose service's or a container's stream, or a
    file."""
    verified_pattern: str = r"Signature Verified"
    """Regex of a log line that records a verified webhook signature."""
    failure_pattern: str = r"Signature Invalid|" + STRIPE_SIGNATURE_ERRORS
    """Regex of a log line that records a failed webhook signature (default: the app's and the
    Stripe library's messages)."""
    traffic_pattern: str = r" access (GET|POST|PUT|PATCH|DELETE|HEAD) "
    """Lines that mean traffic flows (warn when nothing is verified while it does)."""
    window_s: float = Field(60.0, gt=0)
    """Seconds of log lines each measurement counts."""
    max_failure_ratio: float = Field(0.05, ge=0, le=1)
    """Failed / all signature lines above which a measurement fails."""
    min_events: int = Field(5, ge=1)
    """Fewer signature lines than this in a window is no verdict (inconclusive)."""
    min_traffic: int = Field(20, ge=1)
    """Traffic lines in a window with nothing verified before the watch warns."""


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
    """Sentry's base URL (self-hosted: yours)."""
    organization: str = ""
    """The organization's slug."""
    project: str = ""
    """The project's slug."""
    token: SecretStr = SecretStr("")
    """An auth token that may read the project's stats (secret)."""
    stat: Literal["received", "generated"] = "received"
    """Which of Sentry's stats counts errors: "received" or "generated"."""
    requests_from: Literal["logs", "prometheus"] = "logs"
    """Sentry counts errors only; the request total comes from this other source."""


class ErrorBudgetWatchConfig(WatchConfig):
    source: Literal["logs", "prometheus", "sentry"] = "logs"
    """Where the 5xx and request counts come from: "logs" (the access log), "prometheus" or
    "sentry"."""
    budget: float | None = Field(None, gt=0, le=1)
    """Allowed 5xx ratio; unset: ``[thresholds] error_rate_5xx``."""
    long_window_s: float = Field(1800.0, gt=0)
    """The long window (seconds) of the multiwindow burn rate."""
    short_window_s: float = Field(300.0, gt=0)
    """The short window (seconds) of the multiwindow burn rate."""
    page_burn: float = Field(14.4, gt=0)
    """Burn rate over both windows at which the watch breaches (14.4: 2 % of a 30-day budget in
    an hour)."""
    immediate_burn: float = Field(28.8, gt=0)
    """Burn rate over the short window that is an immediate rollback trigger."""
    min_requests: int = Field(30, ge=1)
    """Below this many requests in a window there is no verdict."""
    logs: LogSource = Field(default_factory=LogSource)
    """source = "logs": where the access log comes from."""
    status_pattern: str = r" access \S+ \S+ (?P<status>\d{3}) "
    """Regex with a named group `status` that finds the HTTP status in an access-log line."""
    prometheus: PrometheusSource = Field(default_factory=PrometheusSource)
    """source = "prometheus" (or sentry's requests_from): the server and its two queries."""
    sentry: SentrySource = Field(default_factory=SentrySource)
    """source = "sentry": the project whose error stats are read."""


class DatabaseWatchConfig(WatchConfig):
    database_url: SecretStr | None = None
    """The target's database; unset: ``[target.migrations] database_url``."""


class PayoutWatchConfig(DatabaseWatchConfig):
    rollback_trigger: bool = True
    threshold: float | None = Field(None, ge=0, le=1)
    """Failure rate above which it is a rollback trigger; unset: ``[thresholds]`` (0.15)."""
    window_s: float = Field(300.0, gt=0)
    """Seconds of payouts each measurement looks at (%(window_s)s in sql)."""
    min_payouts: int = Field(10, ge=1)
    """Fewer settled or failed payouts than this in the window is no verdict."""
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
    """[watches.health]: the health endpoint, measured with its latency."""
    webhooks: WebhookWatchConfig = Field(default_factory=WebhookWatchConfig)
    """[watches.webhooks]: verified against failed webhook signatures in the app's log."""
    error_budget: ErrorBudgetWatchConfig = Field(default_factory=ErrorBudgetWatchConfig)
    """[watches.error_budget]: the 5xx error budget's multiwindow burn rate."""
    payouts: PayoutWatchConfig = Field(default_factory=PayoutWatchConfig)
    """[watches.payouts]: the payout failure rate, from the team's SQL."""
    ledger: LedgerWatchConfig = Field(default_factory=LedgerWatchConfig)
    """[watches.ledger]: the ledger invariants, from the team's SQL."""
    history: int = Field(20, ge=2, le=100)
    """Values kept for each watch's sparkline."""
