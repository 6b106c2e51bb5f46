"""The sample paybox stack's own configuration, for tests and benchmarks: what golive's schema
no longer assumes (its ledger queries, log service and Prometheus metric names). The values
themselves live with the sample's config (``bot/dev/rehearse/sample.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bot.dev.rehearse.sample import (
    PAYBOX_CANARY_QUERIES,
    PAYBOX_INVARIANTS,
    PAYBOX_PAYOUTS_SQL,
    PAYBOX_PROMETHEUS,
)
from runbook.target import TargetConfig


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


def paybox_target(
    *,
    edge_port: int = 18080,
    app_port: int = 18081,
    project: str = "paybox",
    database_url: str = "",
    ops_token: str = "",
    admin_user: str = "admin",
    admin_password: str = "",
    app_tag: str = "v1",
    compose_file: str | Path = "examples/paybox/compose.yaml",
    registry: str = "127.0.0.1:5000",
    root: str | Path = ".",
    extra_env: dict[str, str] | None = None,
    **overrides: Any,
) -> TargetConfig:
    """A ``TargetConfig`` for the sample paybox stack (tests and benchmarks)."""
    root = Path(root)
    env = {
        "PAYBOX_APP_TAG": app_tag,
        "PAYBOX_APP_PORT": str(app_port),
        "PAYBOX_EDGE_PORT": str(edge_port),
        "PAYBOX_DATABASE_URL": database_url,
        "PAYBOX_OPS_TOKEN": ops_token,
        "PAYBOX_ADMIN_USER": admin_user,
        "PAYBOX_ADMIN_PASSWORD": admin_password,
        "PAYBOX_REGISTRY": registry,
        **(extra_env or {}),
    }
    edge = f"http://127.0.0.1:{edge_port}"
    data: dict[str, Any] = {
        "name": "paybox",
        "readonly_paths": ["/dashboard"],
        "public_url": edge,
        "internal_url": f"http://127.0.0.1:{app_port}",
        "deployer": {
            "kind": "compose",
            "compose_file": str(root / compose_file),
            "project": project,
            "env": env,
            "registry": registry,
            "registry_variable": "PAYBOX_REGISTRY",
            "services": [{"service": "app", "repository": "paybox/app",
                          "tag_variable": "PAYBOX_APP_TAG"}],
        },
        "health": {"path": "/api/health", "expect": {"status": "ok", "db": "ok"},
                   "version_field": "version", "revision_field": "revision",
                   "schema_field": "schema"},
        "admin_login": {"path": "/admin/login", "username": admin_user,
                        "password": admin_password},
        "dashboard": {"path": "/dashboard", "expect_text": "<title>Paybox Dashboard</title>"},
        "maintenance_page": {"expect_text": "Scheduled maintenance"},
        "smoke": {
            "path": str(root / "examples/paybox/scripts/go_live_smoke.sh"),
            "interpreter": ["bash"],
            # Through the edge: the ops token lets the checks past the maintenance page.
            "args": ["{public_url}"],
            "env": {
                "PAYBOX_ADMIN_USER": admin_user,
                "PAYBOX_ADMIN_PASSWORD": admin_password,
                "PAYBOX_SMOKE_BYPASS_TOKEN": ops_token,
                "PAYBOX_EXPECT_VERSION": "{deployed_tag}",
            },
        },
        "maintenance": {"kind": "http", "url": f"{edge}/ops/maintenance", "token": ops_token,
                        "token_header": "X-Ops-Token", "token_format": "{token}"},
        "migrations": {
            "mode": "compose-run",
            "service": "app",
            "script_location": str(root / "examples/paybox/app/migrations"),
            "database_url": database_url,
        },
    }
    for key, value in overrides.items():
        same_kind = isinstance(value, dict) and value.get("kind", (data.get(key) or {}).get(
            "kind")) == (data.get(key) or {}).get("kind")
        if isinstance(value, dict) and isinstance(data.get(key), dict) and same_kind:
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return TargetConfig.model_validate(data)
