"""Every SQL query a watch or the canary runs, planned with ``EXPLAIN`` on its database
(read-only, with a statement timeout)."""

from __future__ import annotations

from typing import Any

from bot.checkline import Check, database_where
from bot.tries.common import DB_TIMEOUT_S, ReadsContext, TryContext, first, off


class QueryTries(ReadsContext):
    """The watches' and the canary's queries against the target's schema."""

    def __init__(self, ctx: TryContext) -> None:
        super().__init__(ctx)

    def queries(self) -> list[Check]:
        """Every SQL query a watch or the canary runs, planned with EXPLAIN on its database."""
        from pydantic import SecretStr

        w, c = self.cfg.watches, self.cfg.canary
        default = self.target.migrations.database_url if self.target.migrations else None
        groups: list[tuple[str, str, Any, dict[str, str]]] = []

        def url_of(own: SecretStr | None) -> str:
            v = own or default
            return v.get_secret_value() if v is not None else ""

        offs: list[Check] = []
        payouts = getattr(w, "payouts", None)
        if payouts is not None and payouts.enabled and getattr(payouts, "sql", None):
            groups.append(("watch payouts", "[watches.payouts]", url_of(payouts.database_url),
                           {"sql": payouts.sql}))
        else:
            offs.append(off("watch payouts", False, "[watches.payouts] sql"))
        ledger = getattr(w, "ledger", None)
        if ledger is not None and ledger.enabled and getattr(ledger, "invariants", None):
            groups.append(("watch ledger", "[watches.ledger]", url_of(ledger.database_url),
                           {f"invariants.{k}": v for k, v in ledger.invariants.items()}))
        else:
            offs.append(off("watch ledger", self.ctx.needs("watch.ledger"),
                            "[watches.ledger] invariants"))
        q = c.queries if c.enabled else None
        sqls = {k: getattr(q, k) for k in ("balances", "deposit", "withdrawal")
                if q is not None and getattr(q, k, None)}
        sqls.update({f"invariants.{k}": v for k, v in ((q.invariants if q else None) or {}
                                                       ).items()})
        if sqls:
            groups.append(("canary", "[canary.queries]", url_of(c.database_url), sqls))
        else:
            offs.append(off("canary queries", c.enabled and self.ctx.needs("canary"),
                            "[canary.queries]"))
        out: list[Check] = []
        for label, table, url, sqls in groups:
            if not url:
                out.append(Check(True, f"{label} queries: not tried, no database — set "
                                       f"database_url in {table.removesuffix('.queries]')}"
                                       f"{']' if table.endswith('.queries]') else ''} or "
                                       "[target.migrations]", warn=True))
                continue
            out.extend(self._explain(label, table, url, sqls))
        return out + offs

    def _explain(self, label: str, table: str, url: str, sqls: dict[str, str]) -> list[Check]:
        import psycopg


        params = {"window_s": 60, "account": "golive-config-check",
                  "reference": "golive-config-check"}
        bad: list[Check] = []
        try:
            with psycopg.connect(url, connect_timeout=DB_TIMEOUT_S, autocommit=True,
                                 cursor_factory=psycopg.ClientCursor) as conn:
                conn.execute(f"SET statement_timeout = {DB_TIMEOUT_S * 1000}")
                conn.execute("SET default_transaction_read_only = on")
                for key, sql in sqls.items():
                    try:
                        conn.execute("EXPLAIN " + sql, params if "%(" in sql else None)
                    except psycopg.Error as e:
                        bad.append(Check(False, f"{label} query {key} on {database_where(url)}: "
                                                f"{first(e)}",
                                         f"correct {table} {key.split('.')[0]} in "
                                         f"{self.where} (it must run on the target's schema)"))
        except psycopg.Error as e:
            return [Check(False, f"{label} queries: cannot connect to {database_where(url)} "
                                 f"({first(e)})",
                          f"start the database, or correct the database_url {table} uses")]
        return bad or [Check(True, f"{label}: {len(sqls)} quer{'y' if len(sqls) == 1 else 'ies'} "
                                   f"plan on {database_where(url)} (EXPLAIN)")]
