"""Start-up shared by every process (`golive serve`, `work`, `socket`, and the dev tools' demo):
the schema must be at head, the audit log's protection is said out loud, an invalid runbook
stops start-up with its problems listed."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

from bot.settings import Settings

if TYPE_CHECKING:
    from bot.runtime import Runtime


def checked_runtime(settings: Settings) -> Runtime:
    """Build the process; an invalid runbook or an old schema stops start-up clearly."""
    from bot.runtime import build_runtime
    from bot.store import db
    from runbook.model import RunbookError

    try:
        current, head = db.current_revision(settings.database_url), db.head_revision()
    except Exception:  # noqa: BLE001 - the database is down: start anyway, /healthz says so
        current = head = None
    if current != head:
        print(f"golive: cannot start; the bot's database schema is at "
              f"{current or 'nothing (empty database)'}, this version needs {head}. "
              "Run `golive db upgrade` (the Procfile's release phase) first.", file=sys.stderr)
        raise SystemExit(2)

    warn_about_audit(settings)
    # Which config this process runs with (serve, work and socket all start here).
    logging.getLogger("golive").info("config: %s", settings.config.identity() or "built-in")
    try:
        return build_runtime(settings)
    except RunbookError as e:
        print("golive: cannot start; the runbook is invalid:", file=sys.stderr)
        for p in e.problems:
            print(f"  - {p}", file=sys.stderr)
        raise SystemExit(2) from None


def warn_about_audit(settings: Settings) -> None:
    """Say loudly when the audit log is not protected against a database user."""
    import psycopg
    from psycopg.rows import dict_row

    from bot.store import repo

    log = logging.getLogger("golive.audit")
    if settings.audit_key_is_dev:
        log.warning("GOLIVE_AUDIT_KEY is not set: the audit log is chained with the public "
                    "development key, so anyone with database access can rewrite it")
    try:
        with psycopg.connect(settings.database_url, connect_timeout=5,
                             row_factory=dict_row) as conn:
            warning = repo.audit_owner_warning(conn)
    except psycopg.Error:
        return  # the database is down: /healthz says so
    if warning:
        log.warning("audit log: %s", warning)
