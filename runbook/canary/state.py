"""The canary's state, as the shell stores it (a jsonb column): the checklist's items, the
signatures, the health samples and the log; and what a transition hands the shell to run next
(:class:`Verify`) and gets back (:class:`CheckResult`). Pure: pydantic only. The transitions
are ``runbook.canary.machine``'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from runbook.canary.inputs import fmt_money

CHECKS = ("deposit", "withdrawal", "ledger", "webhooks", "error_budget")
ITEMS = (*CHECKS, "signoff")
TITLES = {"deposit": "Deposit", "withdrawal": "Withdraw", "ledger": "Ledger check",
          "webhooks": "Webhook evidence", "error_budget": "Error budget", "signoff": "Sign-off"}
ItemStatus = Literal["pending", "checking", "ok", "failed"]
MARKS = {"pending": "⏳", "checking": "🔄", "ok": "✅", "failed": "❌"}
MAX_SAMPLES = 720  # 30 minutes at a 2.5 s health interval
MAX_LOG = 200


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Balances(_Model):
    """An account's balances (minor units) at a moment; ``exists`` False = no row yet."""

    available: int = 0
    held: int = 0
    exists: bool = True
    at: datetime


class Item(_Model):
    key: str
    status: ItemStatus = "pending"
    summary: str = ""
    """One line with the numbers (why it failed, or what was verified)."""
    reference: str | None = None
    reported_cents: int | None = None
    by: str | None = None
    at: datetime | None = None
    attempts: int = 0
    details: dict[str, Any] = Field(default_factory=dict)
    """What was measured (balances before and after, counts), for the report."""


class Signature(_Model):
    user_id: str
    decision: Literal["sign", "reject"]
    at: datetime
    role: str | None = None
    note: str = ""


class Sample(_Model):
    """One point of the canary window's health history (for the chart)."""

    at: datetime
    latency_ms: float | None = None
    ok: bool = True
    error_rate: float | None = None


class LogEntry(_Model):
    at: datetime
    user: str | None
    text: str


class CanaryState(_Model):
    schema_version: int = 1
    run_id: int | None = None
    opened_by: str
    opened_at: datetime
    traffic_opened_at: datetime | None = None
    account: str
    currency: str
    minor_units: int = 2
    deposit_cents: int
    withdraw_cents: int
    fee_cents: int = 0
    required_signoffs: int = 2
    role_minimums: dict[str, int] = Field(default_factory=dict)
    items: dict[str, Item]
    signatures: tuple[Signature, ...] = ()
    outcome: Literal["open", "GO", "NO-GO"] = "open"
    decided_at: datetime | None = None
    rollback_offered: bool = False
    opening_balances: Balances | None = None
    versions: dict[str, str] = Field(default_factory=dict)
    samples: tuple[Sample, ...] = ()
    log: tuple[LogEntry, ...] = ()
    thread: dict[str, str] = Field(default_factory=dict)
    """Where the shell posted it (channel, ts), so a restart finds the thread."""

    def to_json(self) -> str:
        """The state as JSON for a jsonb column."""
        return self.model_dump_json()

    @classmethod
    def from_json(cls, data: str | bytes | Mapping[str, Any]) -> CanaryState:
        """The state back from :meth:`to_json` (or the decoded jsonb)."""
        if isinstance(data, Mapping):
            return cls.model_validate(dict(data))
        return cls.model_validate_json(data)

    def money(self, cents: int | None) -> str:
        """``cents`` in this canary's currency."""
        return fmt_money(cents, self.currency, self.minor_units)

    def signers(self) -> list[Signature]:
        """The sign (not reject) signatures, in order."""
        return [s for s in self.signatures if s.decision == "sign"]


@dataclass(frozen=True)
class Verify:
    """A ledger verification the shell must run next (see ``runbook.canary.ledger``)."""

    item: str
    reference: str
    account: str
    expected_cents: int
    reported_cents: int | None
    fee_cents: int
    before: Balances | None


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one verification, with the numbers shown."""

    ok: bool
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
