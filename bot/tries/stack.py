"""All the tries of `golive config check` for one settings object, side by side."""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from bot.checkline import Check
from bot.settings import Settings
from bot.tries.app import AppTries
from bot.tries.common import Try, TryContext, safe
from bot.tries.deployer import DeployerTries
from bot.tries.migrations import MigrationTries
from bot.tries.queries import QueryTries
from bot.tries.sources import SourceTries


class StackTries:
    """The tries for one settings object; ``checks()`` runs them all, in a stable order."""

    def __init__(self, settings: Settings, kinds: Iterable[str] = (),
                 down: Iterable[str] = ()) -> None:
        ctx = TryContext(settings, kinds, down)
        self.deployer = DeployerTries(ctx)
        self.app = AppTries(ctx, self.deployer)
        self.migration = MigrationTries(ctx, self.deployer)
        self.sources = SourceTries(ctx, self.deployer)
        self.sql = QueryTries(ctx)

    def checks(self) -> list[Check]:
        # The compose file first: the migration and compose-service tries read its services.
        first = safe(self.deployer.compose_file)
        d, a = self.deployer, self.app
        tries: list[Try] = [d.docker_engine, d.cluster, a.smoke, a.health, a.login, a.switches,
                            self.migration.migrations, self.sources.preflight,
                            self.sources.watch_sources, self.sql.queries]
        with ThreadPoolExecutor(max_workers=4, thread_name_prefix="golive-try") as pool:
            results = list(pool.map(safe, tries))
        docker, cluster, *rest = results
        return docker + cluster + first + [c for r in rest for c in r]


def stack_checks(settings: Settings, kinds: Iterable[str] = (),
                 down: Iterable[str] = ()) -> list[Check]:
    return StackTries(settings, kinds, down).checks()
