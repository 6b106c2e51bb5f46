"""Shared types of the preflight checks: the context a check gets and the result it returns.

Pure: no Slack, no bot database. A check reads its config section, talks to the world through
``runbook.adapters`` and returns a ``PreflightResult``; it raises ``CheckFailed`` (or anything) to
fail, and the runner turns every outcome into a result that is safe to show (masked).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from runbook.adapters.redact import MASK, mask

Progress = Callable[[str], None]


class Status(str, Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    UNKNOWN = "unknown"

    @property
    def icon(self) -> str:
        return {"ok": "✅", "warn": "⚠️", "fail": "❌", "unknown": "❔"}[self.value]


# Worst first: a fail outranks an unknown (we could not tell), which outranks a warning.
_RANK = {Status.FAIL: 3, Status.UNKNOWN: 2, Status.WARN: 1, Status.OK: 0}


def worst(statuses: list[Status] | tuple[Status, ...]) -> Status:
    """The most serious of ``statuses`` (OK when empty)."""
    return max(statuses, key=_RANK.__getitem__, default=Status.OK)


@dataclass
class PreflightResult:
    """What one check found: a status, one line for the checklist, details for the thread."""

    name: str
    status: Status
    finding: str
    details: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    """File name -> text, uploaded next to the details (e.g. the migration SQL)."""
    facts: dict[str, Any] = field(default_factory=dict)
    """Values later steps and rollback read (rc_sha, snapshot path/sha256, alembic revisions)."""
    duration_s: float = 0.0

    @property
    def line(self) -> str:
        return f"{self.status.icon} {self.name}: {self.finding}"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status.value, "finding": self.finding,
                "details": list(self.details), "files": dict(self.files),
                "facts": dict(self.facts), "duration_s": round(self.duration_s, 3)}


class CheckFailed(Exception):
    """Raised by a check or adapter: the check fails (or is ``status``) with this finding."""

    def __init__(self, finding: str, *, status: Status = Status.FAIL,
                 details: list[str] | None = None, facts: dict[str, Any] | None = None):
        super().__init__(finding)
        self.finding = finding
        self.status = status
        self.details = details or []
        self.facts = facts or {}


class Peers:
    """Hand-off between checks of one preflight (the backup drill lends its restored copy to
    the migration check). ``publish`` once per key; ``wait`` returns None on timeout."""

    def __init__(self, running: set[str] | None = None):
        self.running = set(running or ())
        self._values: dict[str, Any] = {}
        self._cond = threading.Condition()

    def publish(self, key: str, value: Any) -> None:
        with self._cond:
            self._values.setdefault(key, value)
            self._cond.notify_all()

    def wait(self, key: str, timeout: float) -> Any:
        with self._cond:
            self._cond.wait_for(lambda: key in self._values, timeout=max(0.0, timeout))
            return self._values.get(key)


@dataclass
class CheckContext:
    """What a check gets: its config section, the run's RC, a deadline, progress, masking."""

    name: str
    config: Any
    """The check's config section (a pydantic model), or None when the TOML has none."""
    rc_tag: str | None = None
    rc_sha: str | None = None
    deadline: float = float("inf")
    """``clock()`` value by which the check must be done (its timeout)."""
    progress: Progress = lambda _msg: None
    secrets: dict[str, str] = field(default_factory=dict)
    peers: Peers = field(default_factory=Peers)
    clock: Callable[[], float] = time.monotonic
    cancelled: threading.Event = field(default_factory=threading.Event)

    def remaining(self, floor: float = 0.5) -> float:
        """Seconds left before the deadline (at least ``floor``, for subprocess timeouts)."""
        return max(floor, self.deadline - self.clock())

    def add_secret(self, name: str, value: str | None) -> None:
        """A value the check discovered (e.g. a key in the target's env) that must be masked."""
        if value:
            self.secrets[name] = value

    def mask(self, text: str) -> str:
        return mask(text, self.secrets)

    def say(self, msg: str) -> None:
        self.progress(self.mask(msg))

    def require_config(self, what: str) -> Any:
        """The config section, or a clear failure naming the TOML section to add."""
        if self.config is None:
            raise CheckFailed(f"not configured: add a [preflight.{what}] section to the golive "
                              "config (see golive.example.toml), or choose the checks with "
                              "[preflight] checks = [...]")
        return self.config


def last4(secret: str | None) -> str:
    """A secret as the checklist may show it: its last 4 characters at most."""
    if not secret:
        return "(empty)"
    return f"{MASK}{secret[-4:]}" if len(secret) > 8 else MASK


def masked_result(result: PreflightResult, secrets: Mapping[str, str]) -> PreflightResult:
    """``result`` with every secret masked in its finding, details, files and facts."""

    def m(value: Any) -> Any:
        if isinstance(value, str):
            return mask(value, secrets)
        if isinstance(value, dict):
            return {k: m(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [m(v) for v in value]
        return value

    return PreflightResult(name=result.name, status=result.status, finding=m(result.finding),
                       details=m(result.details), files=m(result.files), facts=m(result.facts),
                       duration_s=result.duration_s)
