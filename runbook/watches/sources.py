"""Request and error counts per window for the error-budget watch: from the app's logs, from
Prometheus (``/api/v1/query``) or from Sentry's project stats at 10 s resolution.

Every source raises ``SourceError`` with one readable line when it cannot answer (down,
garbage, a shape it does not know); the watch turns that into a measurement Error.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import httpx

from runbook.watches.burnrate import WindowCounts
from runbook.watches.logs import LineCounter, LogTail


class SourceError(Exception):
    """The source could not give a trustworthy number (one line, no secrets)."""


class CountsSource(Protocol):
    description: str

    def counts(self, window_s: float, now: float) -> WindowCounts: ...


def prom_duration(seconds: float) -> str:
    """A PromQL range duration (``30m``, ``45s``)."""
    s = max(1, round(seconds))
    return f"{s // 60}m" if s % 60 == 0 else f"{s}s"


class LogCounts:
    """5xx and total access-log lines counted by a ``LogTail``."""

    def __init__(self, tail: LogTail, counter: LineCounter):
        self.tail, self.counter = tail, counter
        self.description = f"5xx in the access log ({tail.name})"

    def counts(self, window_s: float, now: float) -> WindowCounts:
        problem = self.tail.problem()
        if problem:
            raise SourceError(problem)
        c = self.counter.count(window_s, now)
        return WindowCounts(errors=c["errors"], total=c["total"])


class PrometheusCounts:
    """Two instant queries through ``/api/v1/query``; ``{window}`` is filled in."""

    def __init__(self, url: str, errors_query: str, total_query: str, *, timeout_s: float = 5.0,
                 client: httpx.Client | None = None):
        self.url = url.rstrip("/")
        self.errors_query, self.total_query = errors_query, total_query
        self.client = client or httpx.Client(timeout=timeout_s)
        self.description = f"Prometheus at {self.url}"

    def counts(self, window_s: float, now: float) -> WindowCounts:
        w = prom_duration(window_s)
        return WindowCounts(errors=self.query(self.errors_query.format(window=w), now),
                            total=self.query(self.total_query.format(window=w), now))

    def query(self, expr: str, now: float) -> float:
        """One instant query's scalar value: empty result = 0, NaN = 0 (no data)."""
        try:
            r = self.client.get(f"{self.url}/api/v1/query", params={"query": expr, "time": now})
        except httpx.HTTPError as e:
            raise SourceError(f"Prometheus unreachable: {type(e).__name__}") from None
        try:
            body = r.json()
        except ValueError:
            raise SourceError(f"Prometheus answered HTTP {r.status_code} with non-JSON "
                              f"({r.text[:60]!r})") from None
        if not isinstance(body, dict) or body.get("status") != "success":
            err = body.get("error") if isinstance(body, dict) else None
            raise SourceError(f"Prometheus query failed (HTTP {r.status_code}): "
                              f"{str(err or body)[:160]}")
        return _prom_value(body.get("data"), expr)


def _prom_value(data: Any, expr: str) -> float:
    if not isinstance(data, dict):
        raise SourceError("Prometheus answer has no data object")
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        points = [result]
    elif kind == "vector" and isinstance(result, list):
        points = [s.get("value") if isinstance(s, dict) else None for s in result]
    else:
        raise SourceError(f"Prometheus answered a {kind!r} for {expr[:80]!r}; "
                          f"expected an instant vector or scalar")
    total = 0.0
    for p in points:
        if not (isinstance(p, list) and len(p) == 2 and isinstance(p[1], str)):
            raise SourceError(f"Prometheus sample is not [time, \"value\"]: {str(p)[:60]}")
        try:
            v = float(p[1])  # values arrive as strings: "12", "NaN", "+Inf"
        except ValueError:
            raise SourceError(f"Prometheus value is not a number: {p[1][:30]!r}") from None
        if math.isnan(v):
            continue  # 0/0 over an idle window: no data, not an error
        if math.isinf(v):
            raise SourceError(f"Prometheus value is infinite for {expr[:80]!r}")
        total += v
    return total


class SentryCounts:
    """Errors from Sentry's project stats (10 s resolution), requests from another source.

    ``GET /api/0/projects/{org}/{project}/stats/?stat=received&resolution=10s&since&until``
    answers ``[[timestamp, count], ...]``; the org-level ``stats_v2`` is hourly, too coarse.
    """

    def __init__(self, url: str, organization: str, project: str, token: str,
                 requests: CountsSource, *, stat: str = "received", timeout_s: float = 5.0,
                 client: httpx.Client | None = None):
        self.endpoint = (f"{url.rstrip('/')}/api/0/projects/{organization}/{project}/stats/")
        self.token, self.stat, self.requests = token, stat, requests
        self.client = client or httpx.Client(timeout=timeout_s)
        self.description = f"Sentry {organization}/{project} errors, {requests.description}"

    def errors(self, window_s: float, now: float) -> float:
        params = {"stat": self.stat, "resolution": "10s", "since": int(now - window_s),
                  "until": int(now)}
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            r = self.client.get(self.endpoint, params=params, headers=headers)
        except httpx.HTTPError as e:
            raise SourceError(f"Sentry unreachable: {type(e).__name__}") from None
        if r.status_code != 200:
            raise SourceError(f"Sentry answered HTTP {r.status_code}: {_detail(r)}")
        try:
            points = r.json()
        except ValueError:
            raise SourceError(f"Sentry answered non-JSON ({r.text[:60]!r})") from None
        if not isinstance(points, list):
            raise SourceError(f"Sentry stats are not a list of points: {str(points)[:60]}")
        total = 0.0
        for p in points:
            if not (isinstance(p, list) and len(p) == 2 and all(
                    isinstance(x, int | float) and not isinstance(x, bool) for x in p)):
                raise SourceError(f"Sentry point is not [timestamp, count]: {str(p)[:60]}")
            if p[0] >= now - window_s - 10:  # a 10 s bucket that overlaps the window
                total += p[1]
        return total

    def counts(self, window_s: float, now: float) -> WindowCounts:
        req = self.requests.counts(window_s, now)
        return WindowCounts(errors=self.errors(window_s, now), total=req.total)


def _detail(r: httpx.Response) -> str:
    try:
        body = r.json()
        if isinstance(body, dict) and "detail" in body:
            return str(body["detail"])[:120]
    except ValueError:
        pass
    return r.text[:80]
