"""Web API fault injection for the sandbox: errors, rate limits and outages, reproducibly.

A rule matches one method or every method (``"*"``), fails a fraction of the matching calls
(seeded, so a run replays exactly), at most ``times`` calls or until removed, and either
refuses the call or applies it and then answers the error (what a client sees when Slack
did the work but the answer got lost).
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)
class Fault:
    """One injection rule (see the module docstring)."""

    method: str = "*"
    status: int = 500
    error: str = "internal_error"
    rate: float = 1.0
    times: int | None = None
    applied: bool = False
    retry_after: float | None = None  # for 429: the Retry-After header, in seconds
    headers: dict[str, str] = field(default_factory=dict)
    seed: int = 0
    hits: int = 0  # calls this rule failed so far
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        if self.retry_after is not None:
            self.headers = {**self.headers, "Retry-After": f"{self.retry_after:g}"}

    def matches(self, method: str) -> bool:
        """True when this rule applies to ``method``."""
        return self.method in ("*", method)

    def body(self) -> dict[str, Any]:
        """The JSON body of the error answer."""
        return {"ok": False, "error": self.error}


class Faults:
    """The sandbox's active rules; the first matching rule that fires decides a call."""

    def __init__(self) -> None:
        self._rules: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> Fault:
        """Activate ``fault``; returns it (pass it to ``remove`` to end it)."""
        with self._lock:
            self._rules.append(fault)
        return fault

    def remove(self, fault: Fault) -> None:
        """End one rule (e.g. Slack is back after an outage)."""
        with self._lock:
            if fault in self._rules:
                self._rules.remove(fault)

    def clear(self) -> None:
        """End every rule."""
        with self._lock:
            self._rules.clear()

    def pick(self, method: str) -> Fault | None:
        """The rule that fails this call of ``method``, or None (the call goes through)."""
        with self._lock:
            for rule in self._rules:
                if not rule.matches(method):
                    continue
                if rule.rate < 1.0 and rule._rng.random() >= rule.rate:
                    continue
                rule.hits += 1
                if rule.times is not None and rule.hits >= rule.times:
                    self._rules.remove(rule)
                return rule
            return None
