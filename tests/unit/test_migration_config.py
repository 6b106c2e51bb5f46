"""The migration dry run's and the migrate step's config: clear messages for what is missing,
the dry run's environment, and `alembic history` as the image prints it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from runbook.adapters.alembic_cli import clean_env, dry_run_vars, parse_history
from runbook.checks.sections.migration_check import MigrationCheckConfig
from runbook.target import Migrations


def test_history_gives_heads_and_every_known_revision():
    out = ("0002a, 0002b -> 0003_merge (head) (mergepoint), merge the branches\n"
           "0001 -> 0002b, b side\n"
           "0001 -> 0002a, a side\n"
           "<base> -> 0001 (branchpoint), first -> the ledger\n")
    heads, known = parse_history(out)
    assert heads == ["0003_merge"]
    assert known == {"0001", "0002a", "0002b", "0003_merge"}
    assert parse_history("") == ([], set())


def test_the_dry_run_passes_only_the_scratch_url_and_basics(monkeypatch):
    monkeypatch.setenv("LL_DB_DSN", "postgresql://bot:prod-pw@prod/ledger")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "bots-own-key")
    env = clean_env(dry_run_vars("postgresql://scratch/copy", "LL_DB_DSN",
                                 {"APP_ENV": "dry-run", "GOLIVE_ALEMBIC_URL": "elsewhere"}))
    assert env["LL_DB_DSN"] == env["GOLIVE_ALEMBIC_URL"] == "postgresql://scratch/copy"
    assert env["APP_ENV"] == "dry-run" and "AWS_SECRET_ACCESS_KEY" not in env
    assert set(env) <= {"PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR",
                        "LL_DB_DSN", "GOLIVE_ALEMBIC_URL", "APP_ENV"}


def test_the_check_needs_an_image_or_a_script_location():
    with pytest.raises(ValidationError, match="set image .* or script_location"):
        MigrationCheckConfig.model_validate({})
    with pytest.raises(ValidationError, match="mode 'image' needs image"):
        MigrationCheckConfig.model_validate({"mode": "image", "script_location": "m"})
    assert MigrationCheckConfig.model_validate({"image": "r/app:{tag}"}).run_mode == "image"
    assert MigrationCheckConfig.model_validate({"script_location": "m"}).run_mode == \
        "alembic-api"


@pytest.mark.parametrize("model", [MigrationCheckConfig, Migrations])
def test_names_are_checked(model):
    base = {"script_location": "m"}
    with pytest.raises(ValidationError, match="environment variable name"):
        model.model_validate({**base, "url_variable": "LL DB"})
    with pytest.raises(ValidationError, match="plain SQL name"):
        model.model_validate({**base, "version_table": "v; DROP TABLE x"})


def test_migrations_have_no_sample_defaults():
    m = Migrations()
    assert m.service is None and m.script_location is None and m.url_variable is None
    assert m.version_table == "alembic_version" and m.command == ["alembic"]
