"""The ``[preflight]`` section of the golive TOML: which checks run, one sub-section each.

``[preflight] checks`` names the checks the preflight runs; a check it does not list is not
run (shown as not configured, never as failing). Without ``checks`` the five core checks run
(plus the team's scripts when configured), and a listed check whose section is absent fails
with "not configured: add [preflight.<check>]" so nobody mistakes a missing check for a
passing one. Nothing here knows the sample stack: every file, route, rule and table is the
team's to name (golive.example.toml shows the sample's). Each check's own section is in
``runbook/checks/sections/``.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from runbook.checks.sections.backup_drill import BackupDrillConfig
from runbook.checks.sections.base import Section
from runbook.checks.sections.migration_check import MigrationCheckConfig
from runbook.checks.sections.prod_config import ProdConfigConfig
from runbook.checks.sections.rc_evidence import RcEvidenceConfig
from runbook.checks.sections.release_freeze import ReleaseFreezeConfig
from runbook.checks.sections.team_scripts import TeamScript

CHECK_NAMES = ("release_freeze", "prod_config", "backup_drill", "migration_check",
               "rc_evidence", "team_scripts")
"""Every preflight check golive knows, in checklist order."""
CORE_CHECKS = CHECK_NAMES[:5]
"""What runs when ``[preflight] checks`` is unset (plus team_scripts when configured)."""
_ALIASES = {"migration_dry_run": "migration_check"}


def normalise_check(word: str) -> str:
    """A check's name as typed (``prod-config``, ``migration_dry_run``) -> its name; ValueError
    naming the known ones if unknown."""
    name = word.strip().lower().replace("-", "_")
    name = _ALIASES.get(name, name)
    if name not in CHECK_NAMES:
        raise ValueError(f"unknown check `{word}` (known: {', '.join(CHECK_NAMES)})")
    return name


class Timeouts(Section):
    """Seconds each check may take before it is reported as timed out."""

    release_freeze: float = Field(30, gt=0, le=3600, description="Release freeze, seconds.")
    prod_config: float = Field(30, gt=0, le=3600, description="Prod config, seconds.")
    backup_drill: float = Field(300, gt=0, le=6 * 3600, description="Backup drill, seconds.")
    migration_check: float = Field(300, gt=0, le=6 * 3600,
                                   description="Migration dry run, seconds.")
    rc_evidence: float = Field(30, gt=0, le=3600, description="RC evidence, seconds.")
    team_scripts: float = Field(120, gt=0, le=3600,
                                description="All of the team's scripts together, seconds.")


class PreflightConfig(Section):
    """``[preflight]``: the pre-cutover checks, their timeouts and how fresh they must be."""

    checks: list[str] | None = Field(
        None, description="The checks the preflight runs, e.g. [\"release_freeze\", "
        "\"rc_evidence\"]; one not listed is not run and shows as not configured. Unset: "
        "release_freeze, prod_config, backup_drill, migration_check and rc_evidence (and "
        "team_scripts when configured), each failing until its section exists.")
    max_age_minutes: int = Field(
        60, ge=1, le=24 * 60, description="Gated steps need a green preflight for the run's RC "
        "SHA younger than this.")
    timeouts: Timeouts = Field(default_factory=Timeouts, description="Seconds per check.")
    release_freeze: ReleaseFreezeConfig | None = Field(None, description="The release freeze.")
    prod_config: ProdConfigConfig | None = Field(None, description="The prod config rules.")
    backup_drill: BackupDrillConfig | None = Field(None, description="The backup drill.")
    migration_check: MigrationCheckConfig | None = Field(
        None, description="The migration dry run.")
    rc_evidence: RcEvidenceConfig | None = Field(None, description="The RC evidence.")
    team_scripts: list[TeamScript] = Field(default_factory=list,
                                           description="The team's own scripts.")

    @field_validator("checks")
    @classmethod
    def _checks(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        names = [normalise_check(w) for w in v]
        if not names:
            raise ValueError("lists no check (leave checks out to run the core checks, or "
                             "take the preflight step out of the runbook)")
        return list(dict.fromkeys(names))

    @model_validator(mode="after")
    def _sections(self) -> PreflightConfig:
        missing = [n for n in self.checks or () if not self.section(n)]
        if missing:
            raise ValueError("checks lists " + ", ".join(missing) + " without its section: add "
                             + ", ".join("[[preflight.team_scripts]]" if n == "team_scripts"
                                         else f"[preflight.{n}]" for n in missing)
                             + " (see golive.example.toml), or leave it out of checks")
        return self

    def section(self, name: str) -> Any:
        """The config of check ``name`` (None, or [] for team_scripts, when absent)."""
        return getattr(self, name)

    def selected(self) -> list[str]:
        """The checks ``check.all`` runs, in checklist order."""
        if self.checks is not None:
            return [n for n in CHECK_NAMES if n in self.checks]
        return [n for n in CHECK_NAMES if n != "team_scripts" or self.team_scripts]

    def not_selected(self) -> list[str]:
        """The checks ``[preflight] checks`` leaves out (shown as not configured)."""
        chosen = set(self.selected())
        return [n for n in CHECK_NAMES if n not in chosen] if self.checks is not None else []
