"""What every object of the engine is built with: its dependencies, the audit, the notices.

Every side effect sits behind a committed state transition:
  request -> (awaiting_approval -> approved) -> queued -> running -> succeeded | failed
and every transition records, in its own transaction, which messages must now show something
new (an outbox row per message, see bot/outbox). The engine never calls Slack: the sender
delivers what the outbox says, rendered from the database at send time (bot/engine/cards.py).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.engine.actors import Refused, Requester  # noqa: F401 - re-exported to the engine's callers
from bot.engine.audit_trail import AuditTrail, Mask
from bot.engine.binding import ROLLBACK, bind  # noqa: F401 - ROLLBACK re-exported
from bot.engine.notices import Notices
from bot.engine.outcomes import StepOutcomes
from bot.outbox import Outbox
from bot.slack.directory import Directory
from bot.store.db import Database
from bot.team_config import GoliveConfig
from runbook.model import Gate, Runbook
from runbook.rules import approvals as rule
from runbook.target import TargetConfig

log = logging.getLogger(__name__)

ACTIVE_STATES = ("awaiting_approval", "queued", "running")


@dataclass
class Deps:
    """What the engine talks to besides the database (built by the composition root): its
    typed collaborators, then its settings."""

    outbox: Outbox
    """The write side of durable Slack delivery."""
    directory: Directory
    """Slack's users and user groups (looked up before a transaction opens)."""
    target: TargetConfig
    secrets: Mapping[str, str]
    mask: Mask
    approvers: frozenset[str]
    expiry: timedelta
    audit_key: bytes
    """The audit chain's HMAC key (GOLIVE_AUDIT_KEY): kept out of the database."""
    rollback_gated: bool = True
    step_grace: float = 30.0
    """Seconds past a step's own timeout before the engine kills the step's process group."""
    lease_s: float = 10.0
    """A running step whose heartbeat is older than this (and whose lock is free) is dead."""
    heartbeat_s: float = 1.0
    """How often the worker renews a running step's heartbeat."""
    approval_ttl: timedelta = timedelta(minutes=10)
    """An approved step that has not started this long after its approval lapses."""
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    config: GoliveConfig | None = None
    """The team config: ``[preflight]`` for the checks and gate, ``[rollback]``, channels."""


@dataclass
class Shared:
    """What every object of the engine is built with: the database, the runbook, the typed
    dependencies, the audit trail, the notices and the worker's wake/stop signals. Each object
    takes this and the siblings it calls in its constructor (bot/engine/facade.py builds them)."""

    db: Database
    runbook: Runbook
    deps: Deps
    audit: AuditTrail
    notices: Notices
    outcomes: StepOutcomes
    wake: threading.Event = field(default_factory=threading.Event)
    """Set when work was queued: the worker loop looks for it at once."""
    stop: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def build(cls, *, db: Database, runbook: Runbook, deps: Deps) -> Shared:
        return cls(db=db, runbook=runbook, deps=deps,
                   audit=AuditTrail(db=db, key=deps.audit_key, now=deps.now, mask=deps.mask),
                   notices=Notices(deps.outbox, runbook), outcomes=StepOutcomes(now=deps.now))

    def now(self) -> datetime:
        return self.deps.now()

    def policy(self) -> rule.Policy:
        """The two-person rule's settings now (the user groups: looked up before a transaction
        opens)."""
        return rule.Policy(approvers=self.deps.approvers,
                           groups=self.deps.directory.group_members(), expiry=self.deps.expiry)

    def bound_params(self, step_id: str, args: Mapping[str, Any], override: str | None,
                     verdict: str, **extra: Any) -> dict[str, Any]:
        """What an approval binds (bot/engine/binding.py)."""
        return bind(self.runbook, step_id, args, override, verdict, **extra)


def rule_gate_default() -> Gate:
    return Gate(approvals=1, groups=())


def request_from_row(a: dict, votes: list[dict]) -> rule.Request:
    return rule.Request(
        id=str(a["id"]), run_id=a["run_id"], action=a["action"], params=a["params"],
        params_hash=a["params_hash"], requester=a["requester"], created_at=a["created_at"],
        expires_at=a["expires_at"], status=a["status"], required=a["required"],
        groups=tuple(a["groups"] or ()),
        approvals=tuple(v["user_id"] for v in votes if v["vote"] == "approve"),
        decided_by=a["decided_by"])


