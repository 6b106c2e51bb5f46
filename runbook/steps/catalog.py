"""Every step kind, registered by importing this one module."""

from __future__ import annotations

from runbook.steps import (  # noqa: F401 - imported for their @step_kind registrations
    canary,
    deploy,
    health,
    maintenance,
    migrate,
    preflight,
    rollback,
    smoke,
    traffic,
)
from runbook.steps.base import REGISTRY, not_available

_LATER = {
    "canary": "real-money canary deposit/withdraw and canary report",
    "watch.ledger": "ledger check (held -> 0, available reduced)",
    "watch.webhooks": "webhook watch (signature-verified events)",
    "watch.error_budget": "error budget watch (5xx spikes)",
}

for _name, _description in _LATER.items():
    if _name not in REGISTRY:  # a module built later may already have registered it
        not_available(_name, _description)
