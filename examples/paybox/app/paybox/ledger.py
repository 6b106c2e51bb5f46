"""Ledger operations on Postgres (psycopg 3, plain SQL).

Model: accounts(available_cents, held_cents); transactions are signed money
movements (deposit +, settled payout -), so for every account
    sum(transactions.amount_cents) == available_cents + held_cents.
A payout first moves money available -> held (status 'held'), then either
settles (held -, transaction -amount, status 'settled') or fails (held ->
available, status 'failed').
"""
import random

import psycopg
from psycopg.rows import dict_row

from paybox.config import SCHEMA_ORDER

VIOLATION_ACCOUNT = "knob-ledger-violation"


class LedgerError(Exception):
    def __init__(self, status, code, detail=""):
        super().__init__(detail or code)
        self.status = status
        self.code = code
        self.detail = detail


def connect(settings, timeout=3):
    return psycopg.connect(settings.database_url, connect_timeout=timeout, row_factory=dict_row)


def schema_revision(conn):
    """Current alembic revision, or None when no migration was applied."""
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('public.alembic_version') AS t")
        if cur.fetchone()["t"] is None:
            return None
        cur.execute("SELECT version_num FROM alembic_version LIMIT 1")
        row = cur.fetchone()
        return row["version_num"] if row else None


def schema_state(current, expected):
    """'current' | 'behind' | 'ahead' | 'unknown'."""
    if current == expected:
        return "current"
    if current is None:
        return "behind"
    if current not in SCHEMA_ORDER or expected not in SCHEMA_ORDER:
        return "unknown"
    return "behind" if SCHEMA_ORDER.index(current) < SCHEMA_ORDER.index(expected) else "ahead"


def _has_column(conn, table, column):
    with conn.cursor() as cur:
        cur.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_schema='public' "
            "AND table_name=%s AND column_name=%s", (table, column))
        return cur.fetchone() is not None


def _require_ledger(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('public.accounts') AS t")
        if cur.fetchone()["t"] is None:
            raise LedgerError(503, "schema_missing", "ledger tables missing; run migrations")


def _account_json(row):
    return {
        "account": row["id"],
        "available_cents": int(row["available_cents"]),
        "held_cents": int(row["held_cents"]),
        "balance_cents": int(row["available_cents"]) + int(row["held_cents"]),
    }


def get_account(conn, account):
    _require_ledger(conn)
    with conn.cursor() as cur:
        cur.execute("SELECT * FROM accounts WHERE id=%s", (account,))
        row = cur.fetchone()
    if row is None:
        raise LedgerError(404, "unknown_account")
    return _account_json(row)


def deposit(conn, account, amount, key):
    """Credit an account. Idempotent on idempotency_key (schema 0001)."""
    _require_ledger(conn)
    with conn.transaction(), conn.cursor() as cur:
        if key:
            cur.execute("SELECT id FROM transactions WHERE kind='deposit' AND reference=%s",
                        (key,))
            prev = cur.fetchone()
            if prev:
                cur.execute("SELECT * FROM accounts WHERE id=%s", (account,))
                out = _account_json(cur.fetchone())
                out.update(transaction_id=prev["id"], status="completed", replay=True)
                return 200, out
        cur.execute("INSERT INTO accounts (id) VALUES (%s) ON CONFLICT (id) DO NOTHING",
                    (account,))
        cur.execute("SELECT * FROM accounts WHERE id=%s FOR UPDATE", (account,))
        cur.execute(
            "INSERT INTO transactions (account_id, kind, amount_cents, reference) "
            "VALUES (%s, 'deposit', %s, %s) RETURNING id", (account, amount, key or None))
        tx_id = cur.fetchone()["id"]
        cur.execute(
            "UPDATE accounts SET available_cents = available_cents + %s, updated_at = now() "
            "WHERE id=%s RETURNING *", (amount, account))
        out = _account_json(cur.fetchone())
    out.update(transaction_id=tx_id, status="completed", replay=False)
    return 201, out


def payout(conn, account, amount, key, fail_rate=0.0):
    """Hold then settle (or fail and release) a payout. Returns (http_status, body)."""
    _require_ledger(conn)
    idem = bool(key) and _has_column(conn, "payouts", "idempotency_key")
    with conn.transaction(), conn.cursor() as cur:
        if idem:
            cur.execute("SELECT * FROM payouts WHERE idempotency_key=%s", (key,))
            prev = cur.fetchone()
            if prev:
                cur.execute("SELECT * FROM accounts WHERE id=%s", (prev["account_id"],))
                out = _account_json(cur.fetchone())
                out.update(payout_id=prev["id"], status=prev["status"], replay=True)
                return 200, out
        cur.execute("SELECT * FROM accounts WHERE id=%s FOR UPDATE", (account,))
        acct = cur.fetchone()
        if acct is None:
            raise LedgerError(404, "unknown_account")
        if acct["available_cents"] < amount:
            raise LedgerError(422, "insufficient_funds")
        cur.execute(
            "UPDATE accounts SET available_cents = available_cents - %s, "
            "held_cents = held_cents + %s, updated_at = now() WHERE id=%s",
            (amount, amount, account))
        if idem:
            cur.execute(
                "INSERT INTO payouts (account_id, amount_cents, status, idempotency_key) "
                "VALUES (%s, %s, 'held', %s) RETURNING id", (account, amount, key))
        else:
            cur.execute(
                "INSERT INTO payouts (account_id, amount_cents, status) "
                "VALUES (%s, %s, 'held') RETURNING id", (account, amount))
        payout_id = cur.fetchone()["id"]
    # --- the PSP call would happen here; the knob decides its outcome ---
    failed = fail_rate > 0 and random.random() < fail_rate
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT * FROM accounts WHERE id=%s FOR UPDATE", (account,))
        if failed:
            cur.execute(
                "UPDATE accounts SET available_cents = available_cents + %s, "
                "held_cents = held_cents - %s, updated_at = now() WHERE id=%s",
                (amount, amount, account))
            cur.execute("UPDATE payouts SET status='failed', updated_at=now(), "
                        "failure_reason='psp_declined' WHERE id=%s", (payout_id,))
        else:
            cur.execute(
                "UPDATE accounts SET held_cents = held_cents - %s, updated_at = now() "
                "WHERE id=%s", (amount, account))
            cur.execute(
                "INSERT INTO transactions (account_id, kind, amount_cents, payout_id) "
                "VALUES (%s, 'payout', %s, %s)", (account, -amount, payout_id))
            cur.execute("UPDATE payouts SET status='settled', updated_at=now() WHERE id=%s",
                        (payout_id,))
        cur.execute("SELECT * FROM accounts WHERE id=%s", (account,))
        out = _account_json(cur.fetchone())
    out.update(payout_id=payout_id, status="failed" if failed else "settled", replay=False,
               idempotency_enforced=idem)
    if failed:
        out["failure_reason"] = "psp_declined"
    return 201, out


CHECKS = [
    ("negative_available",
     "SELECT id AS account, available_cents AS value FROM accounts WHERE available_cents < 0"),
    ("negative_held",
     "SELECT id AS account, held_cents AS value FROM accounts WHERE held_cents < 0"),
    ("balance_mismatch",
     ("SELECT a.id AS account, a.available_cents + a.held_cents AS balance_cents, "
     "COALESCE(t.total, 0) AS transactions_cents FROM accounts a LEFT JOIN "
     "(SELECT account_id, SUM(amount_cents) AS total FROM transactions GROUP BY account_id) t "
     "ON t.account_id = a.id WHERE a.available_cents + a.held_cents <> COALESCE(t.total, 0)")),
    ("orphan_transactions",
     ("SELECT t.account_id AS account, SUM(t.amount_cents) AS transactions_cents "
     "FROM transactions t LEFT JOIN accounts a ON a.id = t.account_id WHERE a.id IS NULL "
     "GROUP BY t.account_id")),
    ("held_mismatch",
     ("SELECT a.id AS account, a.held_cents AS held_cents, COALESCE(p.total, 0) AS held_payouts_cents "
     "FROM accounts a LEFT JOIN (SELECT account_id, SUM(amount_cents) AS total FROM payouts "
     "WHERE status='held' GROUP BY account_id) p ON p.account_id = a.id "
     "WHERE a.held_cents <> COALESCE(p.total, 0)")),
    ("payout_stuck_in_held",
     ("SELECT id AS payout_id, account_id AS account, amount_cents, "
     "EXTRACT(EPOCH FROM now() - created_at)::int AS age_seconds FROM payouts "
     "WHERE status='held' AND created_at < now() - make_interval(secs => %(stuck)s)")),
]


def check(conn, stuck_seconds=60):
    """Run the ledger invariants. Returns {"ok": bool, "violations": [...], ...}."""
    _require_ledger(conn)
    violations = []
    with conn.transaction(), conn.cursor() as cur:
        for name, sql in CHECKS:
            cur.execute(sql, {"stuck": stuck_seconds} if "%(stuck)s" in sql else None)
            for row in cur.fetchall():
                v = {"check": name}
                v.update({k: (int(x) if hasattr(x, "as_integer_ratio") else x)
                          for k, x in row.items()})
                violations.append(v)
        cur.execute("SELECT count(*) AS n, COALESCE(sum(available_cents),0) AS a, "
                    "COALESCE(sum(held_cents),0) AS h FROM accounts")
        tot = cur.fetchone()
    return {
        "ok": not violations,
        "violations": violations,
        "checks": [name for name, _ in CHECKS],
        "accounts": int(tot["n"]),
        "available_cents": int(tot["a"]),
        "held_cents": int(tot["h"]),
    }


def set_violation(conn, enabled):
    """Write (or remove) a real inconsistent row: a transaction with no balance behind it."""
    _require_ledger(conn)
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("DELETE FROM transactions WHERE account_id=%s", (VIOLATION_ACCOUNT,))
        cur.execute("DELETE FROM accounts WHERE id=%s", (VIOLATION_ACCOUNT,))
        if enabled:
            cur.execute("INSERT INTO accounts (id) VALUES (%s)", (VIOLATION_ACCOUNT,))
            cur.execute(
                "INSERT INTO transactions (account_id, kind, amount_cents, reference) "
                "VALUES (%s, 'deposit', 1234, NULL)", (VIOLATION_ACCOUNT,))


def stats(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('public.accounts') AS t")
        if cur.fetchone()["t"] is None:
            return None
        cur.execute("SELECT count(*) AS accounts, COALESCE(sum(available_cents),0) AS available, "
                    "COALESCE(sum(held_cents),0) AS held FROM accounts")
        acc = cur.fetchone()
        cur.execute("SELECT status, count(*) AS n FROM payouts GROUP BY status ORDER BY status")
        pay = {r["status"]: int(r["n"]) for r in cur.fetchall()}
    return {"accounts": int(acc["accounts"]), "available_cents": int(acc["available"]),
            "held_cents": int(acc["held"]), "payouts": pay}
