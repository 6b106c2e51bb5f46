"""The ``[canary]`` table of the bot's TOML config: amounts, the account, the ledger queries,
the report template and who signs off (runbook 2C)."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

SHIPPED_TEMPLATE = Path(__file__).resolve().parent.parent / "templates" / "canary_report.md"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CanaryQueries(_Model):
    """SQL against the target's database; ``%(account)s`` and ``%(reference)s`` are bound.
    The three queries are the team's (its ledger's schema); unset, the canary is off."""

    balances: str | None = None
    """One row with ``available`` and ``held`` (minor units) for ``%(account)s``."""
    deposit: str | None = None
    """The deposit with ``%(reference)s``: ``id``, ``account``, ``amount``, ``status``, ``at``."""
    withdrawal: str | None = None
    """The payout with ``%(reference)s``: as ``deposit``, optionally ``settled_at``, ``entries``."""
    settled_statuses: list[str] = Field(default_factory=lambda: ["settled", "completed",
                                                                 "succeeded"])
    """Statuses that mean a transaction settled."""
    invariants: dict[str, str] = Field(default_factory=dict)
    """Name -> SQL returning the violating rows (none: the canary checks no invariants)."""


_SLACK_ID = re.compile(r"^[UWS][A-Z0-9]{2,}$|^[UWS]_[A-Z0-9_]+$")


class Role(_Model):
    """Who may sign for a role: Slack user IDs and/or user group IDs (resolved by the shell)."""

    users: list[str] = Field(default_factory=list)
    """Slack user IDs who may sign for this role."""
    groups: list[str] = Field(default_factory=list)
    """Slack user group IDs whose members may sign (looked up at click time)."""
    min: int = Field(1, ge=0, le=10)
    """Signatures this role must contribute to a GO."""

    @field_validator("users", "groups")
    @classmethod
    def _ids(cls, v: list[str]) -> list[str]:
        bad = [x for x in v if not _SLACK_ID.fullmatch(x)]
        if bad:
            raise ValueError(f"not Slack user or user group IDs: {', '.join(bad)}")
        return v


_CURRENCY = re.compile(r"^[A-Z]{3}$")


class CanaryConfig(_Model):
    """``[canary]``: the real-money smoke test after traffic opens, and its sign-off."""

    enabled: bool = True
    """Offer /golive canary; false: the canary is off."""
    currency: str = "USD"
    """ISO 4217 code shown in the thread and the report."""
    minor_units: int = Field(2, ge=0, le=4)
    """The currency's decimals (2 for USD: the ledger stores cents)."""
    deposit_amount: Decimal = Field(Decimal(10), gt=0)
    """The canary deposit in major units; available must rise by it."""
    withdraw_amount: Decimal = Field(Decimal(10), gt=0)
    """The canary withdrawal in major units; available must fall by it plus fee."""
    fee: Decimal = Field(Decimal(0), ge=0)
    """Charged on the withdrawal: ``available`` must fall by amount + fee."""
    account: str | None = None
    """The account the people use for the canary; nothing else should move it meanwhile.
    Unset: the canary is off."""
    database_url: SecretStr | None = None
    """The target's database; unset: ``[target.migrations] database_url``."""
    timeout_s: float = Field(10.0, gt=0, le=120)
    """Seconds each ledger query may take."""
    queries: CanaryQueries = Field(default_factory=CanaryQueries)
    """[canary.queries]: the SQL that verifies each transaction in the ledger."""
    template: Path | None = None
    """A Jinja2 Markdown template; unset: the shipped ``runbook/templates/canary_report.md``.
    Relative paths are resolved from the config file's folder."""
    required_signoffs: int = Field(2, ge=1, le=10)
    """Distinct people whose GO the canary needs (the opener alone never suffices)."""
    roles: dict[str, Role] = Field(default_factory=dict)
    """Role name -> who may sign for it; empty: the approvers sign."""
    min_verified_webhooks: int = Field(1, ge=0)
    """``Signature Verified`` lines naming the canary's references needed for evidence."""
    max_budget_consumption: float = Field(1.0, gt=0)
    """Share of the error budget the canary window may consume (1.0 = all of it)."""
    error_budget: float | None = Field(None, gt=0, le=1)
    """Allowed 5xx ratio; unset: ``[thresholds] error_rate_5xx``."""

    @field_validator("currency")
    @classmethod
    def _currency(cls, v: str) -> str:
        if not _CURRENCY.fullmatch(v):
            raise ValueError(f"currency must be an ISO 4217 code like USD, got {v!r}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> CanaryConfig:
        for name in ("deposit_amount", "withdraw_amount", "fee"):
            value: Decimal = getattr(self, name)
            if value != value.quantize(Decimal(1).scaleb(-self.minor_units)):
                raise ValueError(f"{name} {value} has more than {self.minor_units} decimals")
        floor = sum(r.min for r in self.roles.values())
        if floor > self.required_signoffs:
            raise ValueError(f"roles need {floor} signatures but required_signoffs is "
                             f"{self.required_signoffs}")
        return self

    def unset(self) -> list[str]:
        """The keys the canary still needs before it can run (empty: ready)."""
        out = [] if self.account else ["[canary] account"]
        return out + [f"[canary.queries] {k}" for k in ("balances", "deposit", "withdrawal")
                      if not getattr(self.queries, k)]

    def cents(self, amount: Decimal) -> int:
        """``amount`` in minor units."""
        return int(amount.scaleb(self.minor_units))

    def template_file(self, base_dir: Path | None = None) -> Path:
        """The report template to use (relative paths from ``base_dir``)."""
        if self.template is None:
            return SHIPPED_TEMPLATE
        if self.template.is_absolute() or base_dir is None:
            return self.template
        return (base_dir / self.template).resolve()
