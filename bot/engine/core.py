"""What every part of the engine shares: its dependencies, the audit, and "what changed".

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

import psycopg

from bot.engine.actors import Actor, Refused  # noqa: F401 - re-exported to the engine's callers
from bot.engine.audit_trail import AuditTrail, Mask
from bot.engine.binding import ROLLBACK, bind  # noqa: F401 - ROLLBACK re-exported
from bot.engine.notices import Notices
from bot.engine.outcomes import StepOutcomes
from bot.outbox import Outbox
from bot.settings import GoliveConfig
from bot.slack.directory import Directory
from bot.store import repo
from bot.store.db import Database
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


class EngineCore:
    """State and helpers every part of the engine shares."""

    def __init__(self, *, db: Database, runbook: Runbook, deps: Deps):
        self.db = db
        self.runbook = runbook
        self.deps = deps
        self.audit = AuditTrail(db=db, key=deps.audit_key, now=deps.now, mask=deps.mask)
        self.notices = Notices(deps.outbox)
        self.outcomes = StepOutcomes(now=deps.now)
        from bot.engine.watch_control import WatchControl  # it needs Actor and Refused from here

        self.watch_control = WatchControl(db=db, audit=self.audit, notices=self.notices,
                                          now=deps.now)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ small helpers
    def _audit(self, conn: psycopg.Connection, *, actor: str, action: str, outcome: str,
               run_id: int | None = None, channel: str | None = None,
               detail: Mapping[str, Any] | None = None) -> None:
        self.audit.record(conn, actor=actor, action=action, outcome=outcome, run_id=run_id,
                          channel=channel, detail=detail)

    def audit_command(self, *, actor: Actor, text: str, outcome: str,
                      detail: Mapping[str, Any] | None = None) -> None:
        """Record a received command and how it ended (every command is audited)."""
        with self.db.transaction() as conn:
            run = repo.active_run(conn)
            self._audit(conn, actor=actor.user_id, channel=actor.channel, action="command",
                        outcome=outcome, run_id=run["id"] if run else None,
                        detail={"text": text[:500], **(detail or {})})

    # ------------------------------------------------------------------ public services
    # What the listeners, the commands and the rooms outside the engine may ask (they never
    # reach ``db``, ``deps`` or a private method).
    @property
    def secrets(self) -> Mapping[str, str]:
        """The values no reply, log or audit row may show (masked everywhere)."""
        return self.deps.secrets

    def account(self, user_id: str) -> rule.Actor:
        """The Slack account behind ``user_id`` (DirectoryUnavailable when Slack cannot say)."""
        return self.deps.directory.actor(user_id)

    def landing(self, channel: str, ts: str) -> bool:
        """Whether a message is being posted in ``channel`` and its ts is not yet recorded."""
        with self.db.transaction() as conn:
            return self.deps.outbox.landing(conn, channel, ts)

    def alert_reason(self, alert_id: int) -> str | None:
        """The rollback reason a Start rollback click on a watch alert gives (None: no such
        alert)."""
        from bot.watches.store import alert_reason

        return alert_reason(self.db, alert_id)

    # ------------------------------------------------------------------ what changed
    # (the message keys: bot/engine/notices.py)
    def _approval_changed(self, conn: psycopg.Connection, a: Mapping[str, Any]) -> None:
        """Every card that shows this approval request must show its current state."""
        if a["kind"] in ("rollback", "mark_done"):
            self.deps.outbox.touch(conn, key=f"card:approval:{a['id']}", channel=a["channel"])
        if a["kind"] == "mark_done":
            exe = repo.get_execution(conn, execution_id=a["params"]["execution"])
            if exe is not None:
                self.notices.step_changed(conn, exe)
            return
        for exe in repo.executions_of_approval(conn, approval_id=a["id"]):
            # A rollback step's card appears when it starts, not while the plan is queued.
            if a["kind"] == "step" or exe["state"] != "queued":
                self.notices.step_changed(conn, exe)

    def _card_of(self, conn: psycopg.Connection, a: Mapping[str, Any]) -> str | None:
        """The ts of the card an approval request's buttons are on (None until posted)."""
        if a["kind"] in ("rollback", "mark_done"):
            return self.deps.outbox.ts(conn, f"card:approval:{a['id']}")
        exes = repo.executions_of_approval(conn, approval_id=a["id"])
        return self.deps.outbox.ts(conn, f"card:exe:{exes[0]['id']}") if exes else None

    def states(self, conn: psycopg.Connection, run_id: int) -> dict[str, str]:
        return self.outcomes.states(conn, run_id)

    def _bound_params(self, step_id: str, args: Mapping[str, Any], override: str | None,
                      verdict: str) -> dict[str, Any]:
        """What an approval binds (bot/engine/binding.py)."""
        return bind(self.runbook, step_id, args, override, verdict)

    def _policy(self) -> rule.Policy:
        return rule.Policy(approvers=self.deps.approvers,
                           groups=self.deps.directory.group_members(), expiry=self.deps.expiry)


def rule_gate_default() -> Gate:
    return Gate(approvals=1, groups=())


def _request_from_row(a: dict, votes: list[dict]) -> rule.Request:
    return rule.Request(
        id=str(a["id"]), run_id=a["run_id"], action=a["action"], params=a["params"],
        params_hash=a["params_hash"], requester=a["requester"], created_at=a["created_at"],
        expires_at=a["expires_at"], status=a["status"], required=a["required"],
        groups=tuple(a["groups"] or ()),
        approvals=tuple(v["user_id"] for v in votes if v["vote"] == "approve"),
        decided_by=a["decided_by"])


