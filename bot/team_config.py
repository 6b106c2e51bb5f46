"""The team's TOML config (``GOLIVE_CONFIG``) as a model: every key with its type, default and
description (``golive config schema`` and golive.example.toml are generated from it), the
checks on Slack IDs, and which of its values are secret. Loading the file, ``${VAR}`` expansion
and the process settings are ``bot.settings``'s.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)

from runbook.break_glass import RollbackSettings
from runbook.canary.config import CanaryConfig
from runbook.checks.config import PreflightConfig
from runbook.target import TargetConfig
from runbook.watches.config import WatchesConfig

SLACK_ID = re.compile(r"^[UWBS][A-Z0-9]{2,}$|^[UWBS]_[A-Z0-9_]+$")
CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$|^[CGD]_[A-Z0-9_]+$")
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _slack_ids(values: list[str], pattern: re.Pattern[str], what: str) -> list[str]:
    bad = [v for v in values if not pattern.match(v)]
    if bad:
        raise ValueError(f"not a Slack {what} ID: {', '.join(bad)}")
    return values


class Channels(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cutover: str
    """The cutover channel's ID (C...): commands, approval cards, progress and the summary."""
    incident: list[str] = Field(default_factory=list)
    """Incident channel IDs: rollback, incident, status and help also work there."""

    @field_validator("cutover")
    @classmethod
    def _cutover(cls, v: str) -> str:
        return _slack_ids([v], CHANNEL_ID, "channel")[0]

    @field_validator("incident")
    @classmethod
    def _incident(cls, v: list[str]) -> list[str]:
        return _slack_ids(v, CHANNEL_ID, "channel")


class Approvers(BaseModel):
    model_config = ConfigDict(extra="forbid")
    users: list[str] = Field(default_factory=list)
    """Slack user IDs (U...) who may approve gated steps (never their own request)."""
    groups: dict[str, str] = Field(default_factory=dict)
    """Approver group name (used by runbook gates) -> Slack user group ID (S...)."""
    expiry_minutes: int = Field(15, ge=1, le=24 * 60)
    """An approval request nobody answered expires after this many minutes."""
    group_cache_seconds: int | None = Field(None, ge=0, le=3600)
    """Ignored, kept so older configs load: membership is looked up fresh on every click."""
    rollback_requires_approval: bool = True
    """A rollback needs a second person's approval (break-glass aside)."""
    deadline_minutes: int | None = Field(None, ge=1, le=24 * 60)
    """An approval request's deadline unless its step sets ``deadline``: a reminder at half
    time, the backup group at the deadline, then it expires; unset: expiry_minutes."""
    decision_deadline_minutes: int = Field(30, ge=1, le=24 * 60)
    """A failed step's decision card's deadline unless its step sets ``deadline``."""
    backup_group: str | None = None
    """Approver group name (a key of groups) asked when a deadline passes unanswered; the
    deadline then extends by half once before the request expires. Unset: it just expires."""

    @field_validator("users")
    @classmethod
    def _users(cls, v: list[str]) -> list[str]:
        return _slack_ids(v, SLACK_ID, "user")

    @field_validator("groups")
    @classmethod
    def _groups(cls, v: dict[str, str]) -> dict[str, str]:
        _slack_ids(list(v.values()), SLACK_ID, "user group")
        return v

    @model_validator(mode="after")
    def _backup_is_a_group(self) -> Approvers:
        if self.backup_group is not None and self.backup_group not in self.groups:
            names = ", ".join(sorted(self.groups)) or "(none configured)"
            raise ValueError(f"backup_group {self.backup_group!r} is not one of the approver "
                             f"groups: {names}")
        return self

    @property
    def deadline(self) -> int:
        """Minutes an approval request waits: deadline_minutes, else expiry_minutes."""
        return self.deadline_minutes or self.expiry_minutes


class Operators(BaseModel):
    """Who may start and finish a run and request steps; absent: the approvers."""

    model_config = ConfigDict(extra="forbid")
    users: list[str] = Field(default_factory=list)
    """Slack user IDs (U...) who may start and finish runs and request steps."""
    groups: list[str] = Field(default_factory=list)
    """Slack user group IDs (S...); membership is looked up at request time."""

    @field_validator("users")
    @classmethod
    def _users(cls, v: list[str]) -> list[str]:
        return _slack_ids(v, SLACK_ID, "user")

    @field_validator("groups")
    @classmethod
    def _groups(cls, v: list[str]) -> list[str]:
        return _slack_ids(v, SLACK_ID, "user group")


class Thresholds(BaseModel):
    model_config = ConfigDict(extra="forbid")
    payout_failure_rate: float = Field(0.15, ge=0, le=1)
    """The payout watch's rollback trigger: a failure rate above this (0.15 = 15 %)."""
    error_rate_5xx: float = Field(0.02, ge=0, le=1)
    """The error budget: the share of requests that may answer 5xx."""
    ledger_violations: int = Field(0, ge=0)
    """Ledger invariant violations tolerated before the ledger watch is a rollback trigger."""
    watch_interval_seconds: int = Field(30, ge=5, le=3600)
    """Seconds between a watch's measurements, unless the watch sets interval_s."""


class GoliveConfig(BaseModel):
    """The team's TOML config (GOLIVE_CONFIG)."""

    model_config = ConfigDict(extra="forbid")
    environment: str = "production"
    """A label on cards and the summary; "production" also requires GOLIVE_AUDIT_KEY."""
    runbook: Path | None = None
    """Your own runbook TOML (relative to this file); unset: the packaged runbook/cutover.toml."""
    channels: Channels
    """``[channels]``: where the bot works."""
    approvers: Approvers
    """``[approvers]``: who approves gated steps, overrides and rollbacks."""
    operators: Operators | None = None
    """``[operators]``: who runs the cutover; unset: the approvers."""
    thresholds: Thresholds = Field(default_factory=Thresholds)
    """``[thresholds]``: the runbook's rollback triggers and the watches' defaults."""
    watches: WatchesConfig = Field(default_factory=WatchesConfig)
    """The post-cutover watches; unset thresholds come from ``thresholds``."""
    target: TargetConfig = Field(default_factory=TargetConfig)
    """``[target]``: the stack being cut over (URLs, deployer, health, switches, migrations)."""
    preflight: PreflightConfig = Field(default_factory=PreflightConfig)
    """``[preflight]``: the pre-cutover checks and how fresh their result must be."""
    canary: CanaryConfig = Field(default_factory=CanaryConfig)
    """The real-money canary and its sign-off (runbook 2C)."""
    rollback: RollbackSettings = Field(default_factory=RollbackSettings)
    """``[rollback.break_glass]``: when one person may roll back alone (runbook 3)."""
    secrets: list[str] = Field(default_factory=list)
    """Environment variables whose values are secret wherever ``${VAR}`` puts them."""
    _expanded_secrets: dict[str, str] = PrivateAttr(default_factory=dict)
    _identity: str = PrivateAttr(default="")

    @field_validator("secrets")
    @classmethod
    def _secret_names(cls, v: list[str]) -> list[str]:
        bad = [n for n in v if not _VAR_NAME.fullmatch(n)]
        if bad:
            raise ValueError(f"not environment variable names: {', '.join(bad)}")
        return v

    def identity(self) -> str:
        """Which config this is: its file and short content hash ("" when not from a file)."""
        return self._identity

    def effective_operators(self) -> Operators:
        """``[operators]``, or the approvers (their users and groups) when it is absent."""
        if self.operators is not None:
            return self.operators
        return Operators(users=list(self.approvers.users),
                         groups=list(self.approvers.groups.values()))

    def secret_values(self) -> dict[str, str]:
        """Every value the config marks secret (SecretStr fields, secret-looking env keys) and
        every value ``${VAR}`` expanded from a variable named in ``secrets``."""
        out = {f"config.{k}": v for k, v in _secret_strs(self).items()}
        out.update(self.target.secrets())
        out.update({f"${{{k}}}": v for k, v in self._expanded_secrets.items()})
        out.update({f"${{{k}}}": os.environ[k] for k in self.secrets if os.environ.get(k)})
        return {k: v for k, v in out.items() if v}


def _secret_strs(value: Any, where: str = "") -> dict[str, str]:
    """Every SecretStr value inside a config model, by its dotted path."""
    out: dict[str, str] = {}
    if isinstance(value, SecretStr):
        out[where] = value.get_secret_value()
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            out.update(_secret_strs(getattr(value, name), f"{where}.{name}" if where else name))
    elif isinstance(value, dict):
        for k, v in value.items():
            out.update(_secret_strs(v, f"{where}.{k}"))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            out.update(_secret_strs(v, f"{where}.{i}"))
    return out
