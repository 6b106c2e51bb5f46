"""Verify the canary's money movements in the target's database (psycopg 3, plain SQL).

Deposit: the transaction exists on the canary's account, is settled, has the canary's amount,
and ``available`` rose by exactly that. Withdrawal: the payout exists on the account with the
canary's amount and settled (its money passed through ``held``), ``held`` is back to 0 and
``available`` fell by exactly amount + fee. Invariants: each configured query returns no rows.
Every problem is listed with its numbers; balances before and after go into the details for
the report. Queries come from ``CanaryQueries`` (the team's; the canary refuses to open
without them, see ``CanaryConfig.unset``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from runbook.canary.config import CanaryConfig
from runbook.canary.inputs import fmt_money
from runbook.canary.state import Balances, CheckResult, Verify

MAX_ROWS_SHOWN = 5


class LedgerVerifier:
    """Runs the canary's ledger queries against ``url``; never raises for a database fault."""

    def __init__(self, url: str, config: CanaryConfig, *,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.url, self.cfg, self.q, self.clock = url, config, config.queries, clock

    def _connect(self) -> psycopg.Connection[dict[str, Any]]:
        return psycopg.connect(self.url, autocommit=True, row_factory=dict_row,
                               connect_timeout=max(1, int(self.cfg.timeout_s)),
                               options=f"-c statement_timeout={int(self.cfg.timeout_s * 1000)}")

    def _sql(self, key: str) -> str:
        """The configured query ``key`` (a psycopg error, shown as such, when it is unset)."""
        sql = getattr(self.q, key)
        if not sql:
            raise psycopg.ProgrammingError(f"[canary.queries] {key} is not set")
        return sql

    def money(self, cents: int | None) -> str:
        return fmt_money(cents, self.cfg.currency, self.cfg.minor_units)

    def balances(self, account: str | None = None) -> Balances:
        """The account's balances now (zeros with ``exists`` False when it has no row)."""
        with self._connect() as conn:
            return self._balances(conn, account or self.cfg.account or "")

    def _balances(self, conn: psycopg.Connection[dict[str, Any]], account: str) -> Balances:
        row = conn.execute(self._sql("balances"), {"account": account}).fetchone()
        now = self.clock()
        if row is None:
            return Balances(available=0, held=0, exists=False, at=now)
        return Balances(available=int(row["available"]), held=int(row["held"]), at=now)

    def verify(self, v: Verify) -> CheckResult:
        """Run the verification the state machine asked for."""
        try:
            with self._connect() as conn:
                return self._verify(conn, v)
        except psycopg.Error as e:
            return CheckResult(False, f"could not query the ledger ({type(e).__name__}: "
                                      f"{_first_line(e)}); report it again to retry")

    def _verify(self, conn: psycopg.Connection[dict[str, Any]], v: Verify) -> CheckResult:
        withdrawal = v.item == "withdrawal"
        sql = self._sql("withdrawal" if withdrawal else "deposit")
        rows = conn.execute(sql, {"reference": v.reference, "account": v.account}).fetchall()
        noun = "payout" if withdrawal else "deposit"
        if not rows:
            return CheckResult(False, f"unknown reference `{v.reference}`: no {noun} with that "
                                      "id or reference in the ledger",
                               {"reference": v.reference})
        row = rows[0]
        after = self._balances(conn, v.account)
        amount, status = int(row["amount"]), str(row["status"])
        details: dict[str, Any] = {
            "reference": v.reference, "transaction_id": str(row["id"]),
            "account": str(row["account"]), "amount_cents": amount, "status": status,
            "expected_cents": v.expected_cents, "fee_cents": v.fee_cents,
            "reported_cents": v.reported_cents,
            "transaction_at": _iso(row.get("at")), "settled_at": _iso(row.get("settled_at")),
            "before": v.before.model_dump(mode="json") if v.before else None,
            "after": after.model_dump(mode="json")}
        problems: list[str] = []
        tx = f"{noun} {row['id']}"
        if str(row["account"]) != v.account:
            problems.append(f"{tx} is on account `{row['account']}`, not the canary's "
                            f"`{v.account}`")
        if amount != v.expected_cents:
            problems.append(f"{tx} is {self.money(amount)}; the canary {noun} is "
                            f"{self.money(v.expected_cents)}")
        if v.reported_cents is not None and v.reported_cents != amount:
            problems.append(f"you reported {self.money(v.reported_cents)} but {tx} is "
                            f"{self.money(amount)}")
        if status not in self.q.settled_statuses:
            problems.append(f"{tx} is `{status}`, not settled"
                            + (" yet; report it again once it settles" if status == "held"
                               else ""))
        problems += self._balance_problems(v, after, withdrawal)
        if problems:
            return CheckResult(False, "; ".join(problems), details)
        b = v.before
        assert b is not None  # _balance_problems reports a missing "before"
        summary = (f"{tx} {self.money(amount)} {status}; available {self.money(b.available)} → "
                   f"{self.money(after.available)}, held {self.money(b.held)} → "
                   f"{self.money(after.held)}")
        return CheckResult(True, summary, details)

    def _balance_problems(self, v: Verify, after: Balances, withdrawal: bool) -> list[str]:
        b = v.before
        if b is None:
            return ["no balance was recorded before it, so the change cannot be checked"]
        if not after.exists:
            return [f"account `{v.account}` does not exist"]
        out = []
        moved = after.available - b.available
        if withdrawal:
            want = v.expected_cents + v.fee_cents
            if -moved != want:
                fee = f" + fee {self.money(v.fee_cents)}" if v.fee_cents else ""
                out.append(f"available fell by {self.money(-moved)} ({self.money(b.available)} "
                           f"→ {self.money(after.available)}); expected "
                           f"{self.money(v.expected_cents)}{fee} = {self.money(want)}")
            if after.held != 0:
                out.append(f"held is {self.money(after.held)}, not back to 0")
        elif moved != v.expected_cents:
            out.append(f"available rose by {self.money(moved)} ({self.money(b.available)} → "
                       f"{self.money(after.available)}); expected {self.money(v.expected_cents)}")
        return out

    def check_invariants(self, account: str | None = None) -> CheckResult:
        """Run every invariant query; ok when none returns a row. Records the balances."""
        try:
            with self._connect() as conn:
                violations: dict[str, list[dict[str, Any]]] = {}
                for name, sql in self.q.invariants.items():
                    rows = conn.execute(sql).fetchall()
                    if rows:
                        violations[name] = [_plain(r) for r in rows]
                bal = self._balances(conn, account or self.cfg.account or "")
        except psycopg.Error as e:
            return CheckResult(False, f"could not run the ledger invariants "
                                      f"({type(e).__name__}: {_first_line(e)})")
        details = {"invariants": list(self.q.invariants), "violations": violations,
                   "balances": bal.model_dump(mode="json")}
        names = len(self.q.invariants)
        if violations:
            shown = "; ".join(
                f"{name}: {len(rows)} row(s), e.g. " + ", ".join(
                    " ".join(f"{k}={v}" for k, v in r.items()) for r in rows[:MAX_ROWS_SHOWN])
                for name, rows in violations.items())
            return CheckResult(False, f"{len(violations)} of {names} invariants violated: "
                                      f"{shown}", details)
        return CheckResult(True, f"all {names} invariants hold; `{account or self.cfg.account}` "
                                 f"available {self.money(bal.available)}, held "
                                 f"{self.money(bal.held)}", details)


def ledger_check(verifier: LedgerVerifier, withdrawal_details: dict[str, Any]) -> CheckResult:
    """The runbook's ledger check: invariants hold and held is 0 after the withdrawal."""
    res = verifier.check_invariants()
    if not res.ok:
        return res
    held = res.details["balances"]["held"]
    if held != 0:
        return CheckResult(False, f"held is {verifier.money(held)} on the canary account, "
                                  "not 0", res.details)
    if not withdrawal_details:
        return CheckResult(False, "the withdrawal is not verified yet", res.details)
    return res


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (int(v) if hasattr(v, "as_integer_ratio") and not isinstance(v, float) else
                v if isinstance(v, int | float | str | bool) or v is None else str(v))
            for k, v in row.items()}


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [""])[0][:160]


def database_label(url: str) -> str:
    """``host:port/dbname`` of a libpq URL, without user or password (for the report)."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "the target's database"
    host = info.get("host") or "localhost"
    port = f":{info['port']}" if info.get("port") else ""
    return f"{host}{port}/{info.get('dbname') or '-'}"
