"""Prometheus metrics (prometheus-client), one registry per process-level Runtime.

``golive serve`` runs two processes (bot/supervise.py): the door counts requests and acks,
the work process Slack calls. Both write to prometheus-client's multiprocess directory
(``PROMETHEUS_MULTIPROC_DIR``, set by ``golive serve`` before either imports the client, see
``bot.supervise.share_metrics``), and the door's /metrics adds them up.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from bot.supervise import MULTIPROC_ENV

ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("golive_requests_total", "Slack requests received",
                                ["kind", "status"], registry=self.registry)
        self.ack_seconds = Histogram("golive_ack_seconds", "Time to ack a Slack request",
                                     ["kind"], buckets=ACK_BUCKETS, registry=self.registry)
        self.slack_calls = Counter("golive_slack_api_calls_total", "Slack Web API calls",
                                   ["method"], registry=self.registry)
        self.slack_errors = Counter("golive_slack_api_errors_total", "Slack Web API errors",
                                    ["method", "error"], registry=self.registry)

    def slack_call(self, method: str, error: str | None) -> None:
        self.slack_calls.labels(method).inc()
        if error:
            self.slack_errors.labels(method, error).inc()

    def render(self) -> tuple[bytes, str]:
        if os.environ.get(MULTIPROC_ENV):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

