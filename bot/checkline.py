"""One line of `golive config check`: shared by the doctor and the tries (no cycle)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    """One line of the report: what was checked, whether it passed, and how to fix it."""

    ok: bool
    what: str
    fix: str = ""
    skipped: bool = False
    """Not run because an earlier check failed (that one is the ❌ to fix)."""
    warn: bool = False
    """Not a failure, but the night may need it (a section that is off): ⚠️."""
    off: bool = False
    """A section that is not configured and that the runbook does not need: ➖."""

    def line(self) -> str:
        if self.skipped:
            return f"⏭️ {self.what}"
        if self.ok and self.off:
            return f"➖ {self.what}"
        if self.ok and self.warn:
            return f"⚠️ {self.what}"
        if self.ok:
            return f"✅ {self.what}"
        return f"❌ {self.what}" + (f" — fix: {self.fix}" if self.fix else "")


def database_where(url: str) -> str:
    """Host, port and database of a PostgreSQL URL, without its credentials."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        info = conninfo_to_dict(url)
    except Exception:  # noqa: BLE001 - an unparsable URL is reported by the connect itself
        return "DATABASE_URL"
    return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"
