"""Ledgerline API: a double-entry transfer service (stdlib HTTP server + psycopg 3).

Every shape here is deliberately unlike examples/paybox, so golive is proved on a stack it was
not written for:

- GET  /healthz            {"state": "up"|"impaired", "build": {"release", "commit"},
                            "checks": {"schema": <revision in ll_schema_version>,
                                       "ledger": "reachable"|"unreachable"}}
- POST /auth/session       JSON {"email", "secret"} -> 201 {"session": {"token", "expires_in"}}
- GET  /console            HTML operator console (Authorization: Bearer <token>)
- GET  /v1/ledger/summary  read-only totals (bearer)
- GET  /v1/ledger/entries  read-only last entries (bearer)
- POST /v1/transfers       {"from", "to", "minor_units"} -> 201 (bearer)

Environment: LL_DB_DSN, LL_API_BIND, LL_API_PORT, LL_OPERATOR_EMAIL, LL_OPERATOR_SECRET,
LL_SESSION_KEY, LL_RELEASE, LL_COMMIT (baked into the image).
"""
import base64
import hashlib
import hmac
import html
import json
import os
import re
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import psycopg

VERSION_TABLE = "ll_schema_version"
TOKEN_TTL = 3600


def log(msg):
    sys.stdout.write("{} ledgerline-api {}\n".format(time.strftime("%Y-%m-%dT%H:%M:%S"), msg))
    sys.stdout.flush()


class Settings:
    def __init__(self, env=None):
        env = os.environ if env is None else env
        self.release = env.get("LL_RELEASE", "dev")
        self.commit = env.get("LL_COMMIT", "0" * 40)
        self.bind = env.get("LL_API_BIND", "127.0.0.1")
        self.port = int(env.get("LL_API_PORT") or 19181)
        dsn = env.get("LL_DB_DSN") or ""
        self.dsn = re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", dsn)
        self.email = env.get("LL_OPERATOR_EMAIL", "ops@ledgerline.test")
        self.secret = env.get("LL_OPERATOR_SECRET", "")
        self.session_key = (env.get("LL_SESSION_KEY") or "").encode() or os.urandom(32)


def connect(st, timeout=3):
    return psycopg.connect(st.dsn, connect_timeout=timeout, autocommit=True)


def schema_revision(conn):
    try:
        row = conn.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchone()
    except psycopg.errors.UndefinedTable:
        return None
    return row[0] if row else None


def issue_token(key, email, now=None):
    exp = int((now or time.time()) + TOKEN_TTL)
    payload = base64.urlsafe_b64encode(f"{email}|{exp}".encode()).decode().rstrip("=")
    mac = hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()[:40]
    return f"llt.{payload}.{mac}"


def token_subject(key, token):
    try:
        prefix, payload, mac = token.split(".")
        if prefix != "llt":
            return None
        want = hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()[:40]
        if not hmac.compare_digest(want, mac):
            return None
        email, exp = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode() \
            .rsplit("|", 1)
        return email if int(exp) >= time.time() else None
    except (ValueError, UnicodeDecodeError):
        return None


CONSOLE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Ledgerline console</title></head>
<body><h1>Ledgerline console</h1>
<p>Operator {who}. Release <code>{release}</code> (commit <code>{commit}</code>),
schema <code>{schema}</code>.</p>
<p>{accounts} accounts, {entries} journal entries.</p></body></html>
"""


class Handler(BaseHTTPRequestHandler):
    server_version = "ledgerline"
    sys_version = ""
    st = None

    def log_message(self, fmt, *args):
        pass

    def _send(self, status, body, ctype="application/json"):
        if not isinstance(body, (bytes, str)):
            body = json.dumps(body, default=str)
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self._status = status

    def _json(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n > 0 else b""
        data = json.loads(raw or b"{}")
        if not isinstance(data, dict):
            raise ValueError("body must be a JSON object")  # noqa: TRY004 - a 400, not a 500
        return data

    def _operator(self):
        auth = self.headers.get("Authorization") or ""
        if auth[:7].lower() == "bearer ":
            who = token_subject(self.st.session_key, auth[7:].strip())
            if who:
                return who
        self._send(401, {"problem": "bearer token required", "login": "POST /auth/session"})
        return None

    def _route(self):
        self._status = 0
        t0 = time.time()
        path = urlsplit(self.path).path
        try:
            handler = ROUTES.get((self.command if self.command != "HEAD" else "GET", path))
            if handler is None:
                self._send(404, {"problem": "no such route", "path": path})
            else:
                handler(self)
        except (ValueError, KeyError, TypeError) as e:
            self._send(400, {"problem": str(e)[:200]})
        except psycopg.Error as e:
            self._send(503, {"problem": "ledger unavailable", "kind": type(e).__name__})
        except Exception as e:  # noqa: BLE001
            log(f"error {self.command} {path}: {type(e).__name__}")
            if not self._status:
                self._send(500, {"problem": "internal"})
        finally:
            if path != "/healthz" or self._status != 200:
                log(f"{self.command} {path} -> {self._status} "
                    f"{(time.time() - t0) * 1000:.1f}ms")

    do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = _route

    # ---------------------------------------------------------------- routes
    def healthz(self):
        st = self.st
        body = {"state": "up", "build": {"release": st.release, "commit": st.commit},
                "checks": {"schema": None, "ledger": "reachable"}}
        try:
            with connect(st, timeout=2) as conn:
                body["checks"]["schema"] = schema_revision(conn)
        except psycopg.Error:
            body["state"] = "impaired"
            body["checks"]["ledger"] = "unreachable"
        self._send(200 if body["state"] == "up" else 503, body)

    def session(self):
        data = self._json()
        email, secret = str(data.get("email", "")), str(data.get("secret", ""))
        ok = bool(self.st.secret) and hmac.compare_digest(email.encode(), self.st.email.encode()) \
            & hmac.compare_digest(secret.encode(), self.st.secret.encode())
        if not ok:
            log("session refused")
            self._send(401, {"problem": "unknown operator or wrong secret"})
            return
        log("session issued")
        self._send(201, {"session": {"token": issue_token(self.st.session_key, email),
                                     "expires_in": TOKEN_TTL}})

    def console(self):
        who = self._operator()
        if not who:
            return
        with connect(self.st) as conn:
            schema = schema_revision(conn)
            accounts = conn.execute("SELECT count(*) FROM ll_accounts").fetchone()[0]
            entries = conn.execute("SELECT count(*) FROM ll_entries").fetchone()[0]
        self._send(200, CONSOLE.format(who=html.escape(who), release=html.escape(self.st.release),
                                       commit=self.st.commit[:12], schema=html.escape(str(schema)),
                                       accounts=accounts, entries=entries),
                   "text/html; charset=utf-8")

    def summary(self):
        if not self._operator():
            return
        with connect(self.st) as conn:
            rows = conn.execute("SELECT code, balance_minor FROM ll_accounts ORDER BY code")
            balances = {code: bal for code, bal in rows}
        self._send(200, {"accounts": balances, "sum_minor": sum(balances.values())})

    def entries(self):
        if not self._operator():
            return
        with connect(self.st) as conn:
            rows = conn.execute("SELECT id, debit, credit, minor_units FROM ll_entries "
                                "ORDER BY id DESC LIMIT 20").fetchall()
        self._send(200, {"entries": [dict(zip(("id", "debit", "credit", "minor_units"), r))
                                     for r in rows]})

    def transfer(self):
        if not self._operator():
            return
        data = self._json()
        src, dst, amount = data.get("from"), data.get("to"), data.get("minor_units")
        if not (isinstance(src, str) and isinstance(dst, str) and src != dst):
            raise ValueError("from and to must be two different account codes")
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise ValueError("minor_units must be a positive integer")
        with connect(self.st) as conn, conn.transaction():
            for code in (src, dst):
                conn.execute("INSERT INTO ll_accounts (code) VALUES (%s) ON CONFLICT DO NOTHING",
                             (code,))
            conn.execute("UPDATE ll_accounts SET balance_minor = balance_minor - %s "
                         "WHERE code = %s", (amount, src))
            conn.execute("UPDATE ll_accounts SET balance_minor = balance_minor + %s "
                         "WHERE code = %s", (amount, dst))
            entry = conn.execute("INSERT INTO ll_entries (debit, credit, minor_units) "
                                 "VALUES (%s, %s, %s) RETURNING id", (src, dst, amount)).fetchone()
        self._send(201, {"entry": entry[0]})


ROUTES = {
    ("GET", "/healthz"): Handler.healthz,
    ("POST", "/auth/session"): Handler.session,
    ("GET", "/console"): Handler.console,
    ("GET", "/v1/ledger/summary"): Handler.summary,
    ("GET", "/v1/ledger/entries"): Handler.entries,
    ("POST", "/v1/transfers"): Handler.transfer,
}


def main():
    st = Settings()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    handler = type("LedgerlineHandler", (Handler,), {"st": st})
    srv = ThreadingHTTPServer((st.bind, st.port), handler)
    srv.daemon_threads = True
    log(f"release={st.release} commit={st.commit[:12]} listen={st.bind}:{st.port}")
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    signal.pause()


if __name__ == "__main__":
    main()
