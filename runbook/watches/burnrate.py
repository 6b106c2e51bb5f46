"""Multiwindow, multi-burn-rate error-budget alerting, adapted to the 30-minute watch. Pure.

From the Google SRE Workbook, "Alerting on SLOs" (approach 6, multiwindow multi-burn-rate):
page when the burn rate exceeds the threshold over BOTH a long and a short window, the short
one being 1/12 of the long one so that the alert stops soon after the errors stop. The
Workbook pages at burn 14.4 over 1 h (with a 5 m short window) for a 30-day SLO. Here the
budget is the post-cutover watch itself: the long window is the 30-minute watch, the short
window 5 minutes, the page threshold stays 14.4 and twice that (28.8) over the short window is
an immediate rollback trigger. Burn rate = error ratio / error budget, where the budget is
the allowed 5xx ratio (``[thresholds] error_rate_5xx``, e.g. 0.02 for a 98 % SLO).

A minimum request count guards both windows: 1 error in 3 requests is a 33 % ratio but no
evidence, so it never pages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class WindowCounts:
    errors: float
    total: float

    @property
    def ratio(self) -> float:
        return self.errors / self.total if self.total > 0 else 0.0


@dataclass(frozen=True)
class BurnPolicy:
    budget: float = 0.02
    """Allowed error ratio (1 - SLO)."""
    long_window_s: float = 1800.0
    short_window_s: float = 300.0
    page_burn: float = 14.4
    immediate_burn: float = 28.8
    min_requests: int = 30


@dataclass(frozen=True)
class BurnVerdict:
    long_burn: float
    short_burn: float
    page: bool
    immediate: bool
    enough_data: bool
    summary: str


def burn_rate(w: WindowCounts, budget: float) -> float:
    """How many times faster than allowed the budget burns in this window."""
    if budget <= 0:
        return math.inf if w.errors > 0 else 0.0
    return w.ratio / budget


def evaluate(long: WindowCounts, short: WindowCounts, policy: BurnPolicy) -> BurnVerdict:
    """Page on long AND short above ``page_burn``; immediate on short above ``immediate_burn``."""
    lb, sb = burn_rate(long, policy.budget), burn_rate(short, policy.budget)
    long_ok = long.total >= policy.min_requests
    short_ok = short.total >= policy.min_requests
    page = long_ok and short_ok and lb >= policy.page_burn and sb >= policy.page_burn
    immediate = short_ok and sb >= policy.immediate_burn
    lw, sw = _fmt_window(policy.long_window_s), _fmt_window(policy.short_window_s)
    summary = (f"burn {lb:.1f}× over {lw} ({long.errors:g}/{long.total:g} 5xx), "
               f"{sb:.1f}× over {sw} ({short.errors:g}/{short.total:g})")
    if not short_ok:
        summary += f"; fewer than {policy.min_requests} requests in {sw}, no verdict"
    elif not long_ok:
        summary += f"; fewer than {policy.min_requests} requests in {lw}"
    return BurnVerdict(lb, sb, page, immediate, long_ok and short_ok, summary)


def _fmt_window(seconds: float) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)} m"
    return f"{seconds:g} s"
