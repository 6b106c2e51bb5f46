"""The composition root: builds every dependency of one bot process from Settings."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from bot.autopilot import Autopilot
from bot.autopilot import register as register_autopilot
from bot.canary.cards import CanaryCards
from bot.canary.room import CanaryRoom
from bot.engine import Deps, Engine
from bot.handoff import Handoff, dispatch
from bot.inbox import Inbox
from bot.metrics import Metrics
from bot.outbox import Outbox, Sender
from bot.plan.service import PlanService
from bot.settings import Settings
from bot.slack.client import MaskingWebClient, mask_payload
from bot.slack.directory import Directory
from bot.store.db import Database
from bot.watches import messages as watch_messages
from bot.watches.room import WatchRoom
from runbook.model import Runbook, default_runbook_path, load_runbook
from runbook.steps.base import REGISTRY

log = logging.getLogger(__name__)


def load_step_catalog() -> None:
    """Import every step implementation so the registry is complete."""
    import runbook.steps.catalog  # noqa: F401


def runbook_for(settings: Settings) -> Runbook:
    load_step_catalog()
    path = settings.config.runbook or default_runbook_path()
    return load_runbook(path, known_kinds=REGISTRY.keys(),
                        approver_groups=settings.config.approvers.groups.keys())


@dataclass
class Runtime:
    settings: Settings
    db: Database
    client: MaskingWebClient
    sender: Sender
    inbox: Inbox
    engine: Engine
    metrics: Metrics
    app: Any
    watches: Any = None  # bot.watches.room.WatchRoom: runs the watches on the leader replica
    canary: Any = None  # bot.canary.room.CanaryRoom: the canary's thread and sign-off
    door_app: Any = None  # the ack-only Bolt app the door dispatches to (bot/server.py)
    handoff: Handoff | None = None  # set when this process runs the work side (start)
    plans: Any = None  # bot.plan.service.PlanService: `/golive plan` and the plan as evidence
    door_db: Database | None = None  # the door's pool, as the door role; None: ``db``
    autopilot: Any = None  # bot.autopilot.Autopilot: `/golive go` (one driver across replicas)

    @property
    def door_database(self) -> Database:
        """Where the door records requests: the only role that may write an inbox row."""
        return self.door_db or self.db

    def start(self, *, worker: bool = True, work: bool = True) -> None:
        """Open the database; with ``work``, also run the work side: the inbox's handler and
        recovery, the outbox sender, the canary, and (``worker``) the step worker and the
        watches. Without it, this process is only the door (``golive serve``'s web process,
        whose work process runs the rest)."""
        self.db.open(wait=False)
        if self.door_db is not None:
            self.door_db.open(wait=False)
        if not work:
            return
        self.sender.start()
        self.inbox.start(self.redispatch)
        self.handoff = Handoff(self.inbox, self.redispatch)
        self.handoff.start()
        if self.canary is not None:  # re-run the checks a restart interrupted, off the start path
            threading.Thread(target=self._resume_canary, name="golive-canary-resume",
                             daemon=True).start()
        if worker:
            self.engine.start_worker()
            if self.watches is not None:
                self.watches.start()
            if self.autopilot is not None:
                self.autopilot.start()

    def redispatch(self, inbox_id: int, body: bytes, request: object = None, *,
                   inline: bool = False) -> bool:
        """Hand a request the door recorded, or one acked by a process that died, to the
        work side's app (bot/handoff.py): as it is, never signed anew (``inline``: its lazy
        half runs in this thread, in a batch)."""
        return dispatch(self.app, inbox_id, body, request, inline=inline)

    def _resume_canary(self) -> None:
        try:
            self.canary.resume()
        except Exception:
            log.exception("could not resume the open canary")

    def stop(self) -> None:
        if self.autopilot is not None:
            self.autopilot.stop()
        if self.canary is not None:
            self.canary.stop()
        if self.watches is not None:
            self.watches.stop()
        if self.handoff is not None:  # the work side ran here
            self.handoff.stop()
            self.engine.stop_worker()
            self.inbox.stop()
            self.sender.stop()
        if self.door_db is not None:
            self.door_db.close()
        self.db.close()


@dataclass(frozen=True)
class Tuning:
    """What the composition root may set on the engine besides the settings: the clock every
    part reads (the engine, the canary), the sleep, and the worker's timings (None: the
    engine's defaults, bot/engine/core.py ``Deps``)."""

    now: Callable[[], datetime] | None = None
    sleep: Callable[[float], None] | None = None
    step_grace: float | None = None
    heartbeat_s: float | None = None

    def apply(self, deps: Deps) -> Deps:
        given = {k: v for k, v in vars(self).items() if v is not None}
        return replace(deps, **given) if given else deps


def build_runtime(settings: Settings, tuning: Tuning | None = None) -> Runtime:
    from bot.app import build_app

    secrets = settings.secrets()
    metrics = Metrics()
    client = MaskingWebClient(token=settings.bot_token, base_url=settings.env.slack_api_url,
                              secrets=secrets, on_call=metrics.slack_call)
    db = Database(settings.database_url)
    # The door records requests as its own role (only it may write an inbox row): one pool
    # of its own when its URL differs; the same pool in a one-role setup.
    door_db = Database(settings.door_database_url, min_size=1) \
        if settings.door_database_url != settings.database_url else None
    cfg = settings.config
    directory = Directory(client, groups=cfg.approvers.groups)
    outbox = Outbox()
    deps = Deps(outbox=outbox, directory=directory, target=cfg.target, config=cfg,
                secrets=secrets,
                mask=partial(mask_payload, secrets=secrets),
                approvers=frozenset(cfg.approvers.users),
                expiry=timedelta(minutes=cfg.approvers.expiry_minutes),
                audit_key=settings.audit_key,
                rollback_gated=cfg.approvers.rollback_requires_approval)
    deps = (tuning or Tuning()).apply(deps)
    engine = Engine(db=db, runbook=runbook_for(settings), deps=deps)
    inbox = Inbox(db)
    sender = Sender(db, client)
    engine.register_cards(sender)
    watch_messages.register(sender)
    watches = WatchRoom(db=db, outbox=outbox, config=cfg, runbook=engine.runbook)
    canary = CanaryRoom(db=db, runbook=engine.runbook, audit=engine.audit, notices=engine.notices,
                        outcomes=engine.outcomes, directory=directory,
                        approvers=deps.approvers, now=deps.now, config=cfg, client=client,
                        secrets=secrets,
                        base_dir=settings.config_path.parent if settings.config_path else None)
    CanaryCards(secrets).register(sender)
    plans = PlanService(db=db, runbook=engine.runbook, target=cfg.target, config=cfg,
                        secrets=secrets, audit_key=settings.audit_key, now=deps.now,
                        outbox=outbox)
    plans.register_cards(sender)  # `/golive plan`'s card and file
    autopilot = Autopilot(db=db, engine=engine, outbox=outbox, now=deps.now, config=cfg)
    register_autopilot(sender)
    app, door_app = (build_app(settings=settings, engine=engine, client=client,
                               secrets=secrets, inbox=inbox, canary=canary, plan=plans,
                               lazy=lazy,
                               autopilot=autopilot)
                     for lazy in (True, False))
    return Runtime(plans=plans, settings=settings, db=db, client=client, sender=sender, inbox=inbox, engine=engine,
                   metrics=metrics, app=app, watches=watches, canary=canary, door_app=door_app,
                   door_db=door_db, autopilot=autopilot)
