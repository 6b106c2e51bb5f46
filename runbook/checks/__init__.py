"""The pre-cutover checks (runbook sections 1 and 2A): one module per check, each
``run(ctx) -> PreflightResult``; ``build_specs`` turns the ``[preflight]`` config into the list the
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
from runbook.checks.base import CheckContext, PreflightResult
from runbook.checks.config import CHECK_NAMES, PreflightConfig, normalise_check
from runbook.checks.runner import CheckSpec

CHECKS: dict[str, Callable[[CheckContext], PreflightResult]] = {
    "release_freeze": release_freeze.run,
    "prod_config": prod_config.run,
    "backup_drill": backup_drill.run,
    "migration_check": migration_check.run,
    "rc_evidence": rc_evidence.run,
    "team_scripts": team_scripts.run,
}
"""Check name -> function. The runbook's kinds map as check.<name>, except
check.migration_dry_run -> migration_check."""
assert tuple(CHECKS) == CHECK_NAMES, "runbook/checks/config.py CHECK_NAMES lists every check"

KIND_TO_CHECK = {f"check.{n}": n for n in CHECKS} | {"check.migration_dry_run": "migration_check"}


def build_specs(cfg: PreflightConfig, only: Iterable[str] | None = None) -> list[CheckSpec]:
    """The checks to run: ``only`` those named, else the ones ``[preflight] checks`` selects
    (unset: the five core checks plus the team's scripts when configured). Unknown names raise
    ValueError naming the known ones."""
    names = [normalise_check(n) for n in only] if only is not None else cfg.selected()
    mig = cfg.migration_check
    if mig is not None and cfg.backup_drill is not None:
        # The migration check reads the same database the drill copies, unless told otherwise.
        mig = mig.model_copy(update={
            "database_url": mig.database_url or cfg.backup_drill.database_url,
            "scratch_url": mig.scratch_url or cfg.backup_drill.scratch_url})
    sections = {n: cfg.section(n) for n in CHECKS} | {"migration_check": mig}
    return [CheckSpec(n, CHECKS[n], sections[n], getattr(cfg.timeouts, n)) for n in names]
