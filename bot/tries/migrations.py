"""The migration tool answers ``current`` where the migrate step runs it (never upgrades)."""

from __future__ import annotations

from bot.checkline import Check
from bot.tries.common import MIGRATION_TIMEOUT_S, ReadsContext, TryContext, first, off
from bot.tries.deployer import DeployerTries


class MigrationTries(ReadsContext):
    """The migrate step's own migrator, asked for its current revision."""

    def __init__(self, ctx: TryContext, deployer: DeployerTries) -> None:
        super().__init__(ctx)
        self.deployer = deployer

    def migrations(self) -> list[Check]:
        import time

        from runbook.adapters import stepkit
        from runbook.context import StepContext
        from runbook.errors import StepFailed

        m = getattr(self.target, "migrations", None)
        if m is None or (m.mode == "compose-run" and not (
                getattr(m, "service", None) and self.ctx.compose_deployer() is not None)) or (
                m.mode == "alembic-api" and m.database_url is None):
            need = ("service and [target.deployer]" if m is not None and m.mode == "compose-run"
                    else "database_url")
            return [off("migrations", self.ctx.needs("migrate"), f"[target.migrations] {need}")]
        if m.mode != "alembic-api" and self.ctx.compose_deployer() is not None \
                and self.deployer.compose is None:
            return [Check(False, "migrations: `current` not tried (the compose file did not "
                                 "parse)", skipped=True)]
        ctx = StepContext(run_id=0, step_id="config-check", params={}, facts={},
                          target=self.target, progress=lambda _line: None,
                          deadline=time.monotonic() + MIGRATION_TIMEOUT_S,
                          secrets=self.secrets, config=self.cfg)
        where = {"compose-run": f"service {m.service} of the running release",
                 "alembic-api": f"{m.script_location} (alembic API)"}.get(
                     m.mode, f"a {m.mode} from the running release")
        try:
            migrator = stepkit.make_migrator(ctx, self.target)
            current = migrator.current_revision()
        except StepFailed as e:
            return [Check(False, f"migrations: `current` in {where} fails: {first(e.message)}",
                          f"bring up the release the migrate step runs in (its image must carry "
                          f"the migration tool), or correct [target.migrations] (mode, service, "
                          f"command, database_url) in {self.where}")]
        return [Check(True, f"migrations: `current` in {where} answers: "
                            f"{current or 'empty database (no revision yet)'}")]
