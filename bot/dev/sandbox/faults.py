"""Web API fault injection for the sandbox: errors, rate limits and outages, reproducibly.

A rule matches one method or every method (``"*"``), fails a fraction of the matching calls
(seeded, so a run replays exactly), at most ``times`` calls or until removed, and either
refuses the call or applies it and then answers the error (what a client sees when Slack
did the work but the answer got lost). A rule may instead ``hold`` a call: it blocks until
the test sets the event (or ``HOLD_LIMIT`` passes), then goes through as if no rule matched,
so a test can freeze a listener mid-way (e.g. kill the bot while its ``users.info`` hangs).
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Any

HOLD_LIMIT = 60.0  # seconds: a forgotten hold never hangs the sandbox for good


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
    hold: threading.Event | None = None  # set: hold matching calls until it is set
    params: dict[str, Any] | None = None  # match only calls with these parameter values
    hits: int = 0  # calls this rule failed (or held) so far
    holding: threading.Event = field(default_factory=threading.Event)  # a call is held now
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        if self.retry_after is not None:
            self.headers = {**self.headers, "Retry-After": f"{self.retry_after:g}"}

    def matches(self, method: str, params: dict[str, Any] | None = None) -> bool:
        """True when this rule applies to ``method`` called with ``params``."""
        if self.method not in ("*", method):
            return False
        return all(str((params or {}).get(k)) == str(v) for k, v in (self.params or {}).items())

    def wait(self) -> None:
        """Block a held call until the test releases it (see ``hold``)."""
        assert self.hold is not None
        self.holding.set()
        try:
            self.hold.wait(HOLD_LIMIT)
        finally:
            self.holding.clear()

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
        """End every rule (a held call goes through)."""
        with self._lock:
            for rule in self._rules:
                if rule.hold is not None:
                    rule.hold.set()
            self._rules.clear()

    def pick(self, method: str, params: dict[str, Any] | None = None) -> Fault | None:
        """The rule that fails (or holds) this call of ``method``, or None (it goes through)."""
        with self._lock:
            for rule in self._rules:
                if not rule.matches(method, params):
                    continue
                if rule.rate < 1.0 and rule._rng.random() >= rule.rate:
                    continue
                rule.hits += 1
                if rule.times is not None and rule.hits >= rule.times:
                    self._rules.remove(rule)
                return rule
            return None
