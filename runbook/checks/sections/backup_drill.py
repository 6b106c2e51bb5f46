"""``[preflight.backup_drill]``: the database snapshotted, restored into a scratch database and
compared."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from runbook.checks.sections.base import Section


class BackupDrillConfig(Section):
    """``[preflight.backup_drill]``: snapshot the database, restore it into a scratch database
    and compare."""

    database_url: SecretStr = Field(
        description="The source database (prod), read through an exported snapshot.")
    scratch_url: SecretStr = Field(
        description="A maintenance database on the server where the scratch copy is created "
        "and dropped.")
    snapshot_dir: Path = Field(description="Where snapshots are written (durable storage).")
    snapshot_command: list[str] = Field(
        default_factory=list, description="Instead of pg_dump: argv whose {path} is where the "
        "custom-format dump must go.")
    ledger_tables: list[str] = Field(
        default_factory=list, description="Tables (schema.table or table) whose rows are "
        "compared by md5 besides the row counts every table gets, e.g. your ledger's; each "
        "needs a primary key. Empty: row counts only.")
    pg_bin_dir: Path | None = Field(
        None, description="Directory of pg_dump/pg_restore (default: PATH).")
    keep_snapshots: int = Field(5, ge=1, description="Snapshots of one RC kept on disk.")
