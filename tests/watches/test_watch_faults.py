"""Watches measure real things and never crash: a down target, an unreachable database, a
broken log stream and garbage from Prometheus or Sentry each become a measurement Error,
counted apart from failures. Sentry cannot be reached from the test machines: its source is
tested against a local server answering with recorded Sentry response shapes."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from runbook.watches.analysis import AnalysisSpec, new_state, step
from runbook.watches.burnrate import BurnPolicy, WindowCounts
from runbook.watches.logs import LineCounter, LogTail, file_opener, pattern_classifier
from runbook.watches.sources import PrometheusCounts, SentryCounts
from runbook.watches.watches import ErrorBudgetWatch, HealthWatch, LedgerWatch, PayoutWatch
from tests.support.paybox_env import free_port
from tests.watches.conftest import Scripted, wait_until

SPEC = AnalysisSpec("w")


def now() -> datetime:
    return datetime.now(UTC)


class Fixed:
    description = "fixed request counts"

    def __init__(self, total: float):
        self.total = total

    def counts(self, window_s: float, now: float) -> WindowCounts:
        return WindowCounts(0, self.total)


def prom_vector(value: str) -> dict:
    return {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {}, "value": [1767268800.123, value]}]}}


def test_prometheus_values_arrive_as_strings_and_nan_is_no_data(scripted: Scripted) -> None:
    src = PrometheusCounts(scripted.url, "errors[{window}]", "total[{window}]")
    scripted.answer(prom_vector("12.5"))
    assert src.query("x", time.time()) == 12.5
    scripted.answer(prom_vector("NaN"))
    assert src.query("x", time.time()) == 0.0, "NaN (0/0 over an idle window) means no data"
    scripted.answer({"status": "success", "data": {"resultType": "vector", "result": []}})
    assert src.query("x", time.time()) == 0.0
    src.counts(1800, time.time())
    assert "query=errors%5B30m%5D" in scripted.requests[-2], scripted.requests


@pytest.mark.parametrize(("body", "status", "raw", "says"), [
    (b"<html>502 Bad Gateway</html>", 502, True, "non-JSON"),
    ({"status": "error", "errorType": "bad_data", "error": "parse error at char 3"}, 400,
     False, "parse error"),
    ({"status": "success", "data": {"resultType": "matrix", "result": []}}, 200, False,
     "matrix"),
    (prom_vector("banana"), 200, False, "not a number"),
    (prom_vector("+Inf"), 200, False, "infinite"),
    ({"status": "success", "data": {"resultType": "vector", "result": [{"value": 3}]}}, 200,
     False, "not [time"),
    ([1, 2, 3], 200, False, "query failed"),
])
def test_prometheus_garbage_is_a_measurement_error(scripted: Scripted, body: object,
                                                  status: int, raw: bool, says: str) -> None:
    scripted.answer(body, status, raw)
    watch = ErrorBudgetWatch(SPEC, PrometheusCounts(scripted.url, "e", "t"), BurnPolicy())
    m = watch.measure(now())
    assert m.phase == "Error" and says in m.summary, m


def test_prometheus_down_is_a_measurement_error() -> None:
    src = PrometheusCounts(f"http://127.0.0.1:{free_port()}", "e", "t", timeout_s=2)
    m = ErrorBudgetWatch(SPEC, src, BurnPolicy()).measure(now())
    assert m.phase == "Error" and "unreachable" in m.summary, m


# Recorded from Sentry's documented response for GET /api/0/projects/{org}/{proj}/stats/
# (a list of [timestamp, count] points) and its error bodies.
SENTRY_POINTS = [[1767268800, 0], [1767268810, 3], [1767268820, 0], [1767268830, 4]]


def test_sentry_project_stats_count_errors_at_10s_resolution(scripted: Scripted) -> None:
    scripted.answer(SENTRY_POINTS)
    src = SentryCounts(scripted.url, "acme", "paybox", "tok-123456", Fixed(200))
    c = src.counts(60, 1767268840)
    assert (c.errors, c.total) == (7, 200), c
    path = scripted.requests[-1]
    assert path.startswith("/api/0/projects/acme/paybox/stats/?") and "resolution=10s" in path
    assert "since=1767268780" in path and "until=1767268840" in path, path
    watch = ErrorBudgetWatch(SPEC, src, BurnPolicy(budget=0.02, min_requests=10))
    assert watch.measure(now()).phase in ("Successful", "Failed")


@pytest.mark.parametrize(("body", "status", "says"), [
    ({"detail": "Invalid token"}, 401, "HTTP 401: Invalid token"),
    ({"detail": "Rate limit exceeded"}, 429, "HTTP 429"),
    ({"data": [[1, 2]]}, 200, "not a list"),
    ([[1767268800, "3"]], 200, "not [timestamp, count]"),
])
def test_sentry_garbage_is_a_measurement_error(scripted: Scripted, body: object, status: int,
                                              says: str) -> None:
    scripted.answer(body, status)
    src = SentryCounts(scripted.url, "acme", "paybox", "tok-123456", Fixed(100))
    m = ErrorBudgetWatch(SPEC, src, BurnPolicy()).measure(now())
    assert m.phase == "Error" and says in m.summary, m
    assert "tok-123456" not in m.summary


def test_target_down_errors_five_times_before_the_watch_says_error() -> None:
    watch = HealthWatch(AnalysisSpec("health"), f"http://127.0.0.1:{free_port()}/api/health",
                        expect={"status": "ok"}, latency_warn_ms=1000, timeout_s=2)
    state = new_state(watch.spec, now())
    kinds = []
    for _ in range(5):
        state, events = step(state, watch.measure(now()), now())
        kinds.append([e.kind for e in events])
        assert state.last is not None and state.last.phase == "Error", state.last
    assert state.state == "error" and kinds[-1][-1] == "measurement_error", kinds
    assert state.counts.failed == 0


def test_database_unreachable_is_a_measurement_error() -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nope"
    for w in (PayoutWatch(SPEC, url, "SELECT 1", threshold=0.15, window_s=60, min_payouts=1,
                          timeout_s=2),
              LedgerWatch(SPEC, url, {"x": "SELECT 1"}, max_violations=0, timeout_s=2)):
        m = w.measure(now())
        assert m.phase == "Error" and "OperationalError" in m.summary, m


def test_payout_rate_and_ledger_invariants_on_a_real_database(ledger_db: str) -> None:
    from bot.dev.rehearse.sample import PAYBOX_INVARIANTS, PAYBOX_PAYOUTS_SQL

    payouts = PayoutWatch(AnalysisSpec("payouts", rollback_trigger=True), ledger_db,
                          PAYBOX_PAYOUTS_SQL, threshold=0.15, window_s=300, min_payouts=10)
    ledger = LedgerWatch(AnalysisSpec("ledger", rollback_trigger=True), ledger_db,
                         dict(PAYBOX_INVARIANTS), max_violations=0)
    with psycopg.connect(ledger_db, autocommit=True) as conn:
        conn.execute("INSERT INTO accounts VALUES ('a', 100, 0)")
        conn.execute("INSERT INTO transactions (account_id, kind, amount_cents) "
                     "VALUES ('a', 'deposit', 100)")
        conn.execute("INSERT INTO payouts (account_id, amount_cents, status) "
                     "SELECT 'a', 1, CASE WHEN i <= 3 THEN 'failed' ELSE 'settled' END "
                     "FROM generate_series(1, 20) i")
    m = payouts.measure(now())
    assert (m.phase, m.value) == ("Successful", 0.15), "15 % is the limit, not above it"
    assert ledger.measure(now()).phase == "Successful"
    with psycopg.connect(ledger_db, autocommit=True) as conn:
        conn.execute("UPDATE payouts SET status = 'failed' WHERE id = 4")
        conn.execute("UPDATE accounts SET held_cents = -5")
    m = payouts.measure(now())
    assert m.phase == "Failed" and m.value == 0.2 and m.evidence["failed"] == 4, m
    m = ledger.measure(now())
    assert m.phase == "Failed", m
    assert set(m.evidence["violations"]) == {"negative_held", "held_not_released",
                                            "entries_match_balances"}, m.evidence
    assert m.evidence["violations"]["negative_held"]["sample"] == [
        {"account": "a", "held_cents": -5}]


@pytest.fixture
def tail_file(tmp_path: Path) -> Iterator[tuple[Path, LogTail, LineCounter]]:
    path = tmp_path / "app.log"
    path.write_text("old Signature Verified\n")
    tail = LogTail("file", file_opener(path), reconnect_max_s=0.2)
    counter = tail.subscribe(LineCounter(pattern_classifier({"ok": "Signature Verified",
                                                             "bad": "SignatureVerification"})))
    tail.start()
    yield path, tail, counter
    tail.stop()


def test_log_tail_counts_new_lines_and_reconnects_after_rotation(
        tail_file: tuple[Path, LogTail, LineCounter]) -> None:
    path, tail, counter = tail_file
    wait_until(lambda: tail.connected, what="the tail to open the file")
    with path.open("a") as f:
        f.write("a Signature Verified\nb stripe.error.SignatureVerificationError: No sig\n")
    wait_until(lambda: counter.count(60, time.time())["ok"] == 1, what="1 verified line")
    assert counter.count(60, time.time())["bad"] == 1
    os.rename(path, path.with_suffix(".1"))
    wait_until(lambda: not tail.connected, what="the tail to notice the rotation")
    assert "down since" in (tail.problem() or ""), tail.problem()
    path.write_text("c Signature Verified\n")
    wait_until(lambda: counter.count(60, time.time())["ok"] == 2, what="the line after rotation")
    assert tail.connected and tail.reconnects >= 1


def test_broken_stream_reconnects_and_is_an_error_meanwhile() -> None:
    from runbook.watches.watches import WebhookWatch

    calls: list[str | None] = []
    idle = threading.Event()

    def opener(last: str | None) -> Iterator[bytes]:
        calls.append(last)
        if len(calls) == 1:
            yield b"2026-01-01T00:00:00.000000001Z x Signature Verified\n"
            raise ConnectionResetError("engine went away")
        if len(calls) == 2:
            raise ConnectionRefusedError("engine down")
        # the engine replays from `since` to the second: the first line is a duplicate
        yield (b"2026-01-01T00:00:00.000000001Z x Signature Verified\n"
               b"2026-01-01T00:00:01.000000000Z y Signature Verified\n")
        yield b""
        idle.wait()  # a connected stream with nothing to say, until the test ends

    tail = LogTail("fake", opener, reconnect_max_s=0.05)
    counter = tail.subscribe(LineCounter(pattern_classifier({"verified": "Signature Verified",
                                                             "failed": "Invalid",
                                                             "traffic": "access"})))
    watch = WebhookWatch(SPEC, tail, counter, window_s=60, max_failure_ratio=0.05,
                         min_events=1, min_traffic=1)
    assert watch.measure(now()).phase == "Error", "not connected yet: no trustworthy count"
    tail.start()
    try:
        wait_until(lambda: len(calls) >= 3 and tail.connected, what="the third connection")
        wait_until(lambda: tail.lines == 2, what="2 distinct lines")
        assert calls[1:] == ["2026-01-01T00:00:00.000000001Z"] * 2, calls
        m = watch.measure(now())
        assert m.phase == "Successful" and m.evidence["verified"] == 2, m
    finally:
        idle.set()
        tail.stop()
