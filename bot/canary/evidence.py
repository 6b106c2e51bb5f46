"""The canary window's evidence, read from the watches' own sources.

The bot's watches shell (bot/watches/) was being built alongside this, so the canary builds
the configured watches' sources itself (``WatchSet.from_config``): the webhook watch's log tail
with a ``WebhookTap`` on it, the error-budget watch's counts source and the health watch. One
set per process, started when a canary opens (or resumes) and stopped with the bot.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from runbook.canary.evidence import WebhookTap, error_budget_evidence, sample_from
from runbook.canary.state import CheckResult, Sample
from runbook.watches.watchset import WatchSet

log = logging.getLogger(__name__)


class CanaryWatches:
    """What the watches measure, for the canary's checks (never raises for a source fault)."""

    def __init__(self, config: Any):
        self.config = config
        self._lock = threading.Lock()
        self._set: WatchSet | None = None
        self._tap: WebhookTap | None = None
        self._problem: str | None = None

    def start(self) -> None:
        """Build and start the sources once (a tail sees lines from then on)."""
        with self._lock:
            if self._set is not None or self._problem is not None:
                return
            try:
                ws = WatchSet.from_config(self.config)
                hook = ws.watches.get("webhooks")
                if hook is not None:
                    wh = self.config.watches.webhooks
                    self._tap = WebhookTap.on(hook.tail, verified_pattern=wh.verified_pattern,
                                              failure_pattern=wh.failure_pattern)
                for tail in ws.tails:
                    tail.start()
                self._set = ws
            except Exception as e:  # noqa: BLE001 - a source that cannot be built: say so
                self._problem = f"the watches' sources could not be started ({e})"
                log.warning("canary: %s", self._problem)

    def stop(self) -> None:
        with self._lock:
            if self._set is not None:
                self._set.stop()

    def webhooks(self, references: Sequence[str], *, since: datetime) -> CheckResult:
        """``Signature Verified`` lines naming the canary's references since it opened."""
        self.start()
        if self._tap is None:
            return CheckResult(False, self._missing("webhooks"))
        return self._tap.evidence(references, since=since.timestamp(),
                                  min_verified=self.config.canary.min_verified_webhooks)

    def error_budget(self, *, since: datetime, now: datetime) -> CheckResult:
        """5xx and requests since traffic opened, against the budget."""
        self.start()
        watch = self._set.watches.get("error_budget") if self._set else None
        if watch is None:
            return CheckResult(False, self._missing("error_budget"))
        cfg = self.config
        budget = (cfg.canary.error_budget or cfg.watches.error_budget.budget
                  or float(cfg.thresholds.error_rate_5xx))
        return error_budget_evidence(watch.source, since=since, now=now, budget=budget,
                                     max_consumption=cfg.canary.max_budget_consumption)

    def sample(self, now: datetime, *, error_rate: float | None = None) -> Sample | None:
        """One health measurement for the window's history (None without a health watch)."""
        self.start()
        watch = self._set.watches.get("health") if self._set else None
        if watch is None:
            return None
        return sample_from(watch.measure(now), error_rate=error_rate)

    def _missing(self, name: str) -> str:
        if self._problem:
            return f"not measured: {self._problem}"
        why = self._set.problems.get(name) if self._set else None
        return f"not measured: the {name.replace('_', ' ')} watch is " + (why or "disabled")
