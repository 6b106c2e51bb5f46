"""Which watches are off for want of a configured source (runbook.watches.watchset
``unconfigured``): nothing of the sample's is assumed."""

from __future__ import annotations

from runbook.target import TargetConfig
from runbook.watches.config import WatchesConfig
from runbook.watches.watchset import unconfigured


def test_an_empty_config_turns_every_source_bound_watch_off_saying_what_to_set():
    off = unconfigured(WatchesConfig(), TargetConfig())
    assert set(off) == {"health", "webhooks", "error_budget", "payouts", "ledger"}, off
    assert "[target.health] path" in off["health"] or "[target] public_url" in off["health"]
    assert "[watches.payouts] sql" in off["payouts"]
    assert "[watches.ledger] invariants" in off["ledger"]
    assert "[watches.webhooks] logs" in off["webhooks"]


def test_configured_sources_are_on_and_prometheus_names_what_it_lacks():
    target = TargetConfig.model_validate({"public_url": "http://shop.test",
                                          "health": {"path": "/healthz"}})
    wc = WatchesConfig.model_validate({
        "webhooks": {"logs": {"kind": "file", "path": "/var/log/shop.log"}},
        "error_budget": {"source": "prometheus", "prometheus": {"url": "http://prom.test"}},
        "payouts": {"sql": "SELECT 0 AS failed, 0 AS total"},
        "ledger": {"invariants": {"none": "SELECT 1 WHERE false"}}})
    off = unconfigured(wc, target)
    assert set(off) == {"error_budget"}, off
    assert off["error_budget"].endswith("errors_query, total_query"), off
    disabled = WatchesConfig.model_validate({n: {"enabled": False} for n in
                                             ("health", "webhooks", "error_budget", "payouts",
                                              "ledger")})
    assert unconfigured(disabled, TargetConfig()) == {}, "a disabled watch is not 'off'"
