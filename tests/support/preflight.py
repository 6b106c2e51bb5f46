"""Helpers for the preflight tests and bench: the fake GitHub, a paybox ledger database, and
the secret-leak assertion."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import psycopg

from tests.support import pg
from tests.support.paybox_env import PAYBOX

MIGRATIONS = PAYBOX / "app" / "migrations"


def fakegithub():
    """The examples/paybox/fakegithub/server.py module."""
    spec = importlib.util.spec_from_file_location("paybox_fakegithub",
                                                  PAYBOX / "fakegithub" / "server.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def make_evidence(out: Path, revisions: dict[str, str]) -> Path:
    """Run the build script's evidence generator into ``out``."""
    spec = importlib.util.spec_from_file_location("paybox_make_evidence",
                                                  PAYBOX / "scripts" / "make_evidence.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out.mkdir(parents=True, exist_ok=True)
    (out / "revisions.json").write_text(json.dumps(revisions))
    import sys

    argv = sys.argv
    sys.argv = ["make_evidence.py", str(out), str(out / "revisions.json")]
    try:
        mod.main()
    finally:
        sys.argv = argv
    return out


def ledger_db(rows: int = 200, revision: str = "0001_ledger") -> tuple[str, str]:
    """A paybox ledger database at ``revision`` with ``rows`` transactions: (name, url)."""
    from alembic import command
    from alembic.config import Config

    name, url = pg.create_database("golive_ledger")
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url)
    cfg.attributes["configure_logger"] = False
    command.upgrade(cfg, revision)
    accounts = max(1, rows // 10)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO accounts (id, available_cents) SELECT 'acct-' || g, 1000 * g "
                     "FROM generate_series(1, %s) g", (accounts,))
        conn.execute("INSERT INTO payouts (account_id, amount_cents, status) "
                     "SELECT 'acct-' || (1 + g %% %s), g, 'settled' FROM generate_series(1, %s) g",
                     (accounts, max(1, rows // 20)))
        conn.execute("INSERT INTO transactions (account_id, kind, amount_cents, reference) "
                     "SELECT 'acct-' || (1 + g %% %s), 'deposit', g, 'ref-' || g "
                     "FROM generate_series(1, %s) g", (accounts, rows))
    return name, url


def assert_no_secret(result, secrets: dict[str, str]) -> None:
    """No finding, detail, file or fact shows a secret beyond its last 4 characters."""
    texts = [result.finding, *result.details, *result.files.values(),
             json.dumps(result.facts, default=str)]
    for name, value in secrets.items():
        if not value or len(value) < 8:
            continue
        for text in texts:
            assert value not in text and value[:-4] not in text, (
                f"{result.name} leaks {name} in: {text[:300]}")
