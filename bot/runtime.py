"""The composition root: builds every dependency of one bot process from Settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

from bot.engine import Deps, Engine
from bot.metrics import Metrics
from bot.settings import Settings
from bot.slack.client import MaskingWebClient, mask_payload
from bot.slack.directory import Directory
from bot.slack.poster import Poster
from bot.store.db import Database
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
    poster: Poster
    engine: Engine
    metrics: Metrics
    app: Any

    def start(self, *, worker: bool = True) -> None:
        self.db.open(wait=False)
        self.poster.start()
        if worker:
            self.engine.start_worker()

    def stop(self) -> None:
        self.engine.stop_worker()
        self.poster.stop()
        self.db.close()


def build_runtime(settings: Settings) -> Runtime:
    from bot.app import build_app

    secrets = settings.secrets()
    metrics = Metrics()
    client = MaskingWebClient(token=settings.bot_token, base_url=settings.env.slack_api_url,
                              secrets=secrets, on_call=metrics.slack_call)
    db = Database(settings.database_url)
    cfg = settings.config
    poster = Poster(client)
    directory = Directory(client, groups=cfg.approvers.groups)
    deps = Deps(poster=poster, directory=directory, target=cfg.target, secrets=secrets,
                mask=partial(mask_payload, secrets=secrets),
                approvers=frozenset(cfg.approvers.users),
                expiry=timedelta(minutes=cfg.approvers.expiry_minutes),
                audit_key=settings.audit_key,
                rollback_gated=cfg.approvers.rollback_requires_approval)
    engine = Engine(db=db, runbook=runbook_for(settings), deps=deps)
    app = build_app(settings=settings, engine=engine, client=client, secrets=secrets)
    return Runtime(settings=settings, db=db, client=client, poster=poster, engine=engine,
                   metrics=metrics, app=app)
