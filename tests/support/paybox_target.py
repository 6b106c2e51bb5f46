"""The sample paybox stack's own configuration, for tests and benchmarks: what golive's schema
no longer assumes (its ledger queries, log service and Prometheus metric names). The values
themselves live with the sample's config (``bot/dev/rehearse/sample.py``)."""

from __future__ import annotations

import json
from typing import Any

from bot.dev.rehearse.sample import (
    PAYBOX_CANARY_QUERIES,
    PAYBOX_INVARIANTS,
    PAYBOX_PAYOUTS_SQL,
    PAYBOX_PROMETHEUS,
)


def paybox_canary_queries() -> dict[str, Any]:
    """``[canary.queries]`` for paybox's ledger."""
    return {**PAYBOX_CANARY_QUERIES, "invariants": dict(PAYBOX_INVARIANTS)}


def paybox_watch_sources() -> dict[str, dict[str, Any]]:
    """Each watch's source on paybox (``[watches.<name>]`` keys), to merge into a config."""
    logs = {"kind": "docker", "service": "app"}
    return {"webhooks": {"logs": logs},
            "error_budget": {"logs": logs, "prometheus": dict(PAYBOX_PROMETHEUS)},
            "payouts": {"sql": PAYBOX_PAYOUTS_SQL},
            "ledger": {"invariants": dict(PAYBOX_INVARIANTS)}}


def toml_value(value: Any) -> str:
    """A TOML value (inline tables for dicts)."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)
