"""The migration dry run reaches only the copy; one alembic invocation and the project's version
table everywhere (migrate, the rollback's downgrade, the check's ``current``).

The alembic project is tests/fixtures/envvar_alembic: its env.py reads the URL from LL_DB_DSN
only and keeps revisions in ``ll_schema_version``. The bot's own environment holds LL_DB_DSN
set to the "production" database, as a bot whose config expands ``${LL_DB_DSN}`` would. Real
PostgreSQL, pg_dump/pg_restore, alembic, Docker Engine and compose; the image is built from the
paybox app image with its ``alembic`` executable removed (only ``python3 -m alembic`` works).
"""

from __future__ import annotations

import os
import secrets as pysecrets
import shutil
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

from runbook.checks import build_specs
from runbook.checks.base import Status
from runbook.checks.config import PreflightConfig
from runbook.checks.runner import run_checks
from runbook.context import StepContext
from runbook.errors import StepFailed
from runbook.steps.migrate import run as migrate
from runbook.steps.rollback import data as rollback_data
from runbook.target import TargetConfig
from tests.support import pg
from tests.support.paybox_env import REGISTRY, ROOT, worker_tag
from tests.support.preflight import assert_no_secret

PROJECT = ROOT / "tests" / "fixtures" / "envvar_alembic"
VERSION_TABLE = "ll_schema_version"
R1, R2 = "0001_ll_accounts", "0002_ll_limits"
PYTHON_ALEMBIC = ["python3", "-m", "alembic"]


def revision(url: str) -> str | None:
    """What a person would query: the project's version table (None: no such table)."""
    with psycopg.connect(url, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass(%s)", (VERSION_TABLE,)).fetchone()[0] is None:
            return None
        row = conn.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchone()
        return row[0] if row else None


def has_limits_column(url: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'll_accounts' "
            "AND column_name = 'daily_limit_cents'").fetchone()[0] == 1


def alembic_version_table_exists(url: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT to_regclass('alembic_version')").fetchone()[0] is not None


@pytest.fixture
def prod(monkeypatch):
    """A "production" database at R1 with a row, and the bot holding its URL in LL_DB_DSN."""
    from alembic import command
    from alembic.config import Config

    name, url = pg.create_database("golive_llprod")
    monkeypatch.setenv("LL_DB_DSN", url)
    cfg = Config()
    cfg.set_main_option("script_location", str(PROJECT))
    cfg.attributes["configure_logger"] = False
    command.upgrade(cfg, R1)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO ll_accounts (id, balance_cents) VALUES ('acct-1', 500)")
    assert revision(url) == R1
    yield url
    pg.drop_database(name)


def check_config(prod_url: str, **mig) -> PreflightConfig:
    return PreflightConfig.model_validate({"migration_check": {
        "url_variable": "LL_DB_DSN", "version_table": VERSION_TABLE, "lint": False,
        "database_url": prod_url, "scratch_url": pg.ADMIN_URL, **mig}})


def assert_only_the_copy_moved(mig, prod_url: str) -> None:
    assert mig.status is Status.OK, (mig.finding, mig.details)
    assert f"{R1} → {R2} pending" in mig.finding, mig.finding
    assert "upgrade on prod copy OK" in mig.finding, mig.finding
    assert mig.facts["alembic_current"] == R1 and mig.facts["alembic_head"] == R2
    assert any(d.startswith("upgrade head on the prod copy") and d.endswith(f"now at {R2}")
               for d in mig.details), mig.details
    (name, sql), = mig.files.items()
    assert name == f"migration-{R1}-to-{R2}.sql"
    assert "ADD COLUMN daily_limit_cents" in sql and VERSION_TABLE in sql
    # Production is where it was: same revision, no new column, its row intact.
    assert revision(prod_url) == R1
    assert not has_limits_column(prod_url)
    assert not alembic_version_table_exists(prod_url)
    assert_no_secret(mig, {"prod": prod_url, "scratch": pg.ADMIN_URL})


def test_api_dry_run_migrates_only_the_copy_though_the_bot_holds_the_prod_url(prod):
    cfg = check_config(prod, mode="alembic-api", script_location=str(PROJECT))
    mig = run_checks(build_specs(cfg, ["migration_check"])).results["migration_check"]
    assert_only_the_copy_moved(mig, prod)


def test_api_dry_run_without_url_variable_fails_and_never_uses_the_bots_variable(prod):
    cfg = check_config(prod, mode="alembic-api", script_location=str(PROJECT), url_variable=None)
    mig = run_checks(build_specs(cfg, ["migration_check"])).results["migration_check"]
    assert mig.status is Status.FAIL, (mig.finding, mig.details)
    assert "LL_DB_DSN is not set" in "\n".join([mig.finding, *mig.details])
    assert revision(prod) == R1 and not has_limits_column(prod)


def test_api_migrator_reads_the_projects_version_table(prod, tmp_path):
    """Forward migrate in alembic-api mode (env.py reads the bot's LL_DB_DSN: the target)."""
    target = _target(tmp_path, "unused", mode="alembic-api", script_location=str(PROJECT),
                     database_url=prod)
    out = migrate(_ctx(target))
    assert out.facts == {"alembic_before": R1, "alembic_after": R2}, out.summary
    assert revision(prod) == R2


def test_api_migrate_passes_database_url_in_url_variable(prod, tmp_path, monkeypatch):
    """The bot holds LL_DB_DSN for another database: `url_variable` points env.py at the
    configured database_url for the forward migrate, and the bot's value is kept after."""
    elsewhere = pg.db_url("golive_no_such_db")
    monkeypatch.setenv("LL_DB_DSN", elsewhere)
    target = _target(tmp_path, "unused", mode="alembic-api", script_location=str(PROJECT),
                     database_url=prod)
    out = migrate(_ctx(target))
    assert out.facts == {"alembic_before": R1, "alembic_after": R2}, out.summary
    assert revision(prod) == R2
    assert os.environ["LL_DB_DSN"] == elsewhere


# ------------------------------------------------------------------------------- with Docker
@pytest.fixture(scope="module")
def ll_image(tmp_path_factory) -> str:
    """The fixture project baked into the paybox app image, its `alembic` executable removed;
    tagged for this worker: <repo>:<tag>."""
    ctx = tmp_path_factory.mktemp("ll-image")
    shutil.copytree(PROJECT, ctx / "ll", ignore=shutil.ignore_patterns("__pycache__"))
    (ctx / "Dockerfile").write_text(
        f"FROM {REGISTRY}/paybox/app:v1\n"
        "COPY ll /ll\n"
        "WORKDIR /ll\n"
        "RUN rm -f /usr/local/bin/alembic\n")
    repo = f"golive-test/ll-mig-{worker_tag()}-{pysecrets.token_hex(4)}".lower()
    r = subprocess.run(["docker", "build", "-q", "-t", f"{repo}:rc1", str(ctx)],
                       capture_output=True, text=True, check=False, timeout=300,
                       env={**_docker_env(), "DOCKER_BUILDKIT": "0"})
    assert r.returncode == 0, f"docker build failed (run `bash .ci/docker-up.sh`?):\n{r.stderr}"
    which = subprocess.run(["docker", "run", "--rm", f"{repo}:rc1", "sh", "-c",
                            "command -v alembic"], capture_output=True, text=True, check=False)
    assert which.returncode != 0, f"the test image still has alembic: {which.stdout}"
    yield repo
    subprocess.run(["docker", "rmi", "-f", f"{repo}:rc1"], capture_output=True, check=False)


def _docker_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "DOCKER_HOST")}


@pytest.mark.docker
def test_image_dry_run_migrates_only_the_copy_though_the_bot_holds_the_prod_url(prod, ll_image):
    cfg = check_config(prod, image=f"{ll_image}:{{tag}}", command=PYTHON_ALEMBIC,
                       network="host", pull="never")  # built here, in no registry
    t0 = time.monotonic()
    mig = run_checks(build_specs(cfg, ["migration_check"]), rc_tag="rc1"
                     ).results["migration_check"]
    print(f"\nimage dry run: {time.monotonic() - t0:.1f} s")
    assert_only_the_copy_moved(mig, prod)


@pytest.mark.docker
def test_image_dry_run_says_which_image_is_missing(prod):
    missing = f"{REGISTRY}/golive-test/no-such-app"
    cfg = check_config(prod, image=f"{missing}:{{tag}}", command=PYTHON_ALEMBIC, network="host")
    mig = run_checks(build_specs(cfg, ["migration_check"]), rc_tag="rc9"
                     ).results["migration_check"]
    assert mig.status is Status.FAIL
    assert f"docker could not run {missing}:rc9" in mig.finding, mig.finding
    assert "(check [preflight.migration_check] image)" in mig.finding, mig.finding
    assert revision(prod) == R1


def _target(tmp_path: Path, image_repo: str, **migrations) -> TargetConfig:
    compose = tmp_path / "compose.yaml"
    compose.write_text("services:\n  ledger:\n    image: ${LL_IMAGE}:${LL_TAG:-missing}\n"
                       "    network_mode: host\n")
    return TargetConfig.model_validate({
        "name": "ledgerline-test",
        "public_url": "http://127.0.0.1:9", "internal_url": "http://127.0.0.1:9",
        "deployer": {"kind": "compose", "compose_file": str(compose),
                     "project": f"golive-llmig-{worker_tag()}-{pysecrets.token_hex(3)}",
                     "env": {"LL_IMAGE": image_repo}, "registry": REGISTRY,
                     "services": [{"service": "ledger", "repository": "golive-test/ll",
                                   "tag_variable": "LL_TAG"}]},
        "migrations": {"service": "ledger", "url_variable": "LL_DB_DSN",
                       "version_table": VERSION_TABLE, **migrations},
    })


def _ctx(target: TargetConfig, *, facts: dict | None = None, params: dict | None = None
         ) -> StepContext:
    return StepContext(run_id=1, step_id="it", params=dict(params or {}),
                       facts={"deployed_tag": "rc1", **(facts or {})}, target=target,
                       progress=lambda _line: None, deadline=time.monotonic() + 240,
                       clock=time.monotonic, sleep=time.sleep, secrets=target.secrets())


@pytest.fixture
def ledger(monkeypatch):
    """An empty target database; the bot holds a DIFFERENT database's URL in LL_DB_DSN, so
    only `url_variable` (the configured database_url) can point alembic at the target."""
    name, url = pg.create_database("golive_lltarget")
    monkeypatch.setenv("LL_DB_DSN", pg.db_url("golive_no_such_db"))
    yield url
    pg.drop_database(name)


@pytest.mark.docker
def test_migrate_and_rollback_use_one_invocation_and_the_projects_version_table(
        ledger, ll_image, tmp_path):
    target = _target(tmp_path, ll_image, command=PYTHON_ALEMBIC, database_url=ledger)
    first = migrate(_ctx(target, params={"target": R1}))
    assert first.facts == {"alembic_before": None, "alembic_after": R1}, first.summary
    up = migrate(_ctx(target))
    assert up.facts == {"alembic_before": R1, "alembic_after": R2}, up.summary
    assert revision(ledger) == R2 and has_limits_column(ledger)
    assert not alembic_version_table_exists(ledger)

    down = rollback_data(_ctx(target, facts=up.facts, params={"strategy": "downgrade"}))
    assert down.summary == f"alembic downgraded: {R2} -> {R1}", down.summary
    assert down.facts == {"alembic_rolled_back_to": R1}
    assert revision(ledger) == R1 and not has_limits_column(ledger)


@pytest.mark.docker
def test_an_image_without_the_configured_alembic_fails_at_migrate_not_at_rollback(
        ledger, ll_image, tmp_path):
    """With `command = ["alembic"]` and no such executable in the image, the forward migrate
    fails before it changes anything (it used to pass with a private python3 path, leaving the
    rollback's `alembic current` to fail in the middle of the night), and says what to set."""
    target = _target(tmp_path, ll_image, command=["alembic"], database_url=ledger)
    with pytest.raises(StepFailed) as failed:
        migrate(_ctx(target))
    assert "alembic current failed" in failed.value.message
    assert '[target.migrations] command, e.g. ["python3", "-m", "alembic"]' in \
        failed.value.message
    assert revision(ledger) is None
    with pytest.raises(StepFailed) as again:
        rollback_data(_ctx(target, facts={"alembic_before": R1}))
    assert "alembic current failed" in again.value.message
