"""The five watches against the real paybox stack, driven by its failure knobs: each reaches
the right state and fires the right event (the rollback triggers of runbook section 3)."""

from __future__ import annotations

import secrets
import subprocess
import time
import urllib.request
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from bot.team_config import Thresholds
from runbook.watches.analysis import WatchEvent
from runbook.watches.config import WatchesConfig
from runbook.watches.watchset import WatchSet
from tests.support.paybox_target import paybox_target, paybox_watch_sources
from tests.watches.conftest import wait_until

pytestmark = pytest.mark.docker


def watchset(stack: Any, **watches: Any) -> WatchSet:
    """The configured watches for this stack; only those named in ``watches`` are enabled."""
    cfg: dict[str, Any] = {n: {"enabled": False} for n in
                           ("health", "webhooks", "error_budget", "payouts", "ledger")}
    sources = paybox_watch_sources()  # paybox's log service and queries: its config's
    for name, over in watches.items():
        src = dict(sources.get(name, {}))
        if "prometheus" in src and "prometheus" in over:
            over = {**over, "prometheus": {**src.pop("prometheus"), **over["prometheus"]}}
        cfg[name] = {"enabled": True, **src, **over}
    target = paybox_target(edge_port=stack.edge_port, app_port=stack.app_port,
                           project=stack.project, database_url=stack.database_url,
                           ops_token=stack.ops_token)
    ws = WatchSet.from_config(SimpleNamespace(watches=WatchesConfig.model_validate(cfg),
                                              thresholds=Thresholds(), target=target))
    assert not ws.problems, ws.problems
    ws.start(datetime.now(UTC))
    return ws


def tick(ws: WatchSet, name: str) -> tuple[Any, list[WatchEvent]]:
    return ws.tick(name, datetime.now(UTC))


def kinds(events: list[WatchEvent]) -> list[str]:
    return [e.kind for e in events]


def until_state(ws: WatchSet, name: str, want: str, timeout: float = 30) -> list[WatchEvent]:
    """Tick until the watch shows ``want``; return every event seen on the way."""
    seen: list[WatchEvent] = []

    def check() -> bool:
        state, events = tick(ws, name)
        seen.extend(events)
        return state.state == want

    try:
        wait_until(check, timeout, f"{name} to reach {want}")
    except AssertionError as e:
        last = ws.states[name].last
        raise AssertionError(f"{e}; it shows {ws.states[name].state}: "
                             f"{last.summary if last else '-'}") from None
    return seen


def test_health_red_and_back(stack: Any) -> None:
    ws = watchset(stack, health={})
    try:
        assert tick(ws, "health")[0].state == "ok"
        stack.set_knobs(health_red=True)
        state, events = tick(ws, "health")
        assert state.state == "breach" and "HTTP 503" in state.last.summary, state.last
        assert kinds(events) == ["state_changed"], "health is not a runbook rollback trigger"
        stack.set_knobs(health_red=False)
        state, events = tick(ws, "health")
        assert state.state == "ok" and kinds(events) == ["state_changed", "recovered"]
        assert "▁" in state.sparkline() or "█" in state.sparkline()
    finally:
        ws.stop()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _traffic(stack: Any, n: int) -> None:
    for _ in range(n):
        stack.http("GET", f"{stack.app}/api/accounts?account=nobody")


def test_5xx_burst_pages_and_a_28_8_burn_is_an_immediate_trigger(stack: Any) -> None:
    ws = watchset(stack, error_budget={"source": "logs", "long_window_s": 60,
                                       "short_window_s": 10, "min_requests": 20})
    try:
        wait_until(lambda: all(t.connected for t in ws.tails), 20, "the container log stream")
        _traffic(stack, 40)
        until_state(ws, "error_budget", "ok", 10)
        stack.set_knobs(error_5xx_rate=1.0)
        _traffic(stack, 100)  # 100 of 140 in the short window: 71 % = 36x a 2 % budget
        events = until_state(ws, "error_budget", "breach", 15)
        assert "rollback_trigger" in kinds(events), kinds(events)
        trig = next(e for e in events if e.kind == "rollback_trigger")
        assert trig.evidence["short_burn"] >= 28.8 and "immediate" in trig.text, trig
        state = ws.states["error_budget"]
        assert state.last is not None and state.last.evidence["short"]["errors"] > 20
    finally:
        ws.stop()


def test_5xx_burst_through_a_real_prometheus(stack: Any, prometheus: str) -> None:
    ws = watchset(stack, error_budget={"source": "prometheus", "prometheus": {"url": prometheus},
                                       "long_window_s": 60, "short_window_s": 20,
                                       "min_requests": 10})
    try:
        _traffic(stack, 30)
        until_state(ws, "error_budget", "ok", 20)
        stack.set_knobs(error_5xx_rate=0.8)
        deadline = time.monotonic() + 30
        events: list[WatchEvent] = []
        while ws.states["error_budget"].state != "breach" and time.monotonic() < deadline:
            _traffic(stack, 10)
            events += tick(ws, "error_budget")[1]
        state = ws.states["error_budget"]
        assert state.state == "breach", state.last
        assert "Prometheus" in state.last.evidence["source"]
        assert "state_changed" in kinds(events)
    finally:
        ws.stop()


def test_payout_failures_over_15_percent_fire_the_rollback_trigger(stack: Any) -> None:
    ws = watchset(stack, payouts={"min_payouts": 10})
    acct = "acct-" + secrets.token_hex(4)
    try:
        assert stack.json("POST", f"{stack.app}/api/deposits",
                          {"account": acct, "amount_cents": 100_000})[0] == 201
        for _ in range(20):
            stack.json("POST", f"{stack.app}/api/payouts", {"account": acct, "amount_cents": 1})
        state, _ = tick(ws, "payouts")
        assert state.state == "ok", state.last
        stack.set_knobs(payout_fail_rate=1.0)
        for _ in range(6):
            stack.json("POST", f"{stack.app}/api/payouts", {"account": acct, "amount_cents": 1})
        state, events = tick(ws, "payouts")
        assert state.state == "breach" and state.last.value > 0.15, state.last
        assert kinds(events) == ["state_changed", "rollback_trigger"], kinds(events)
        assert events[1].evidence["failed"] >= 6 and "payouts" in events[1].evidence["query"]
    finally:
        ws.stop()


def test_ledger_violation_fires_the_rollback_trigger(stack: Any) -> None:
    ws = watchset(stack, ledger={})
    try:
        assert tick(ws, "ledger")[0].state == "ok"
        stack.set_knobs(ledger_violation=True)
        state, events = tick(ws, "ledger")
        assert state.state == "breach", state.last
        assert kinds(events) == ["state_changed", "rollback_trigger"], kinds(events)
        bad = events[1].evidence["violations"]["entries_match_balances"]["sample"]
        assert {"account": "knob-ledger-violation", "balance_cents": 0,
                "entries_cents": 1234} in bad, bad
    finally:
        ws.stop()


def test_webhook_failures_breach_and_the_stream_survives_a_restart(stack: Any) -> None:
    ws = watchset(stack, webhooks={"window_s": 30, "min_events": 4})
    body = b'{"type": "payout.paid", "id": "evt_1"}'

    def webhooks(good: int, bad: int) -> None:
        for _ in range(good):
            stack.http("POST", f"{stack.app}/webhooks/psp", raw=body,
                       headers={"X-Paybox-Signature": "sha256=" + stack.sign(body)})
        for _ in range(bad):
            stack.http("POST", f"{stack.app}/webhooks/psp", raw=body,
                       headers={"X-Paybox-Signature": "sha256=0000"})

    try:
        wait_until(lambda: all(t.connected for t in ws.tails), 20, "the container log stream")
        webhooks(5, 0)
        until_state(ws, "webhooks", "ok", 10)
        wait_until(lambda: tick(ws, "webhooks")[0].last.evidence["verified"] == 5, 10,
                   "5 verified signatures counted")
        webhooks(0, 5)
        events = until_state(ws, "webhooks", "breach", 10)
        assert kinds(events) == ["state_changed"], kinds(events)
        tail = ws.tails[0]
        before = tail.reconnects
        subprocess.run(["docker", "compose", "-p", stack.project, "restart", "-t", "2", "app"],
                       env=stack.env(), check=True, capture_output=True, timeout=60)
        wait_until(lambda: tail.reconnects > before and tail.connected, 30,
                   "the log stream to reconnect after the restart")
        wait_until(lambda: _answers(f"{stack.app}/api/health"), 30, "the app to answer again")
        webhooks(3, 0)
        wait_until(lambda: tick(ws, "webhooks")[0].last.evidence["verified"] >= 8, 10,
                   "webhooks after the restart to be counted")
    finally:
        ws.stop()
