"""The pre-cutover checks (runbook sections 1 and 2A): one module per check, each
``run(ctx) -> CheckResult``; ``build_specs`` turns the ``[preflight]`` config into the list the
runner runs concurrently."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from runbook.checks import (
    backup_drill,
    migration_check,
    prod_config,
    rc_evidence,
    release_freeze,
    team_scripts,
)
from runbook.checks.base import CheckContext, CheckResult
from runbook.checks.config import PreflightConfig
from runbook.checks.runner import CheckSpec

CHECKS: dict[str, Callable[[CheckContext], CheckResult]] = {
    "release_freeze": release_freeze.run,
    "prod_config": prod_config.run,
    "backup_drill": backup_drill.run,
    "migration_check": migration_check.run,
    "rc_evidence": rc_evidence.run,
    "team_scripts": team_scripts.run,
}
"""Check name -> function. The runbook's kinds map as check.<name>, except
check.migration_dry_run -> migration_check."""

KIND_TO_CHECK = {f"check.{n}": n for n in CHECKS} | {"check.migration_dry_run": "migration_check"}


def build_specs(cfg: PreflightConfig, only: Iterable[str] | None = None) -> list[CheckSpec]:
    """The checks to run: ``only`` those named, else the five core checks plus the team's
    scripts when configured. Unknown names raise ValueError."""
    names = list(only) if only is not None else [
        n for n in CHECKS if n != "team_scripts" or cfg.team_scripts]
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise ValueError(f"unknown check(s): {', '.join(unknown)} (known: {', '.join(CHECKS)})")
    mig = cfg.migration_check
    if mig is not None and cfg.backup_drill is not None:
        # The migration check reads the same database the drill copies, unless told otherwise.
        mig = mig.model_copy(update={
            "database_url": mig.database_url or cfg.backup_drill.database_url,
            "scratch_url": mig.scratch_url or cfg.backup_drill.scratch_url})
    sections = {"release_freeze": cfg.release_freeze, "prod_config": cfg.prod_config,
                "backup_drill": cfg.backup_drill, "migration_check": mig,
                "rc_evidence": cfg.rc_evidence, "team_scripts": cfg.team_scripts}
    return [CheckSpec(n, CHECKS[n], sections[n], getattr(cfg.timeouts, n)) for n in names]
