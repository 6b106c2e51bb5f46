"""Paybox HTTP server: stdlib ThreadingHTTPServer + psycopg 3, no framework."""
import hashlib
import hmac
import html
import json
import random
import signal
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from paybox import ledger
from paybox.config import Settings

KNOB_DEFAULTS = {"health_red": False, "error_5xx_rate": 0.0, "payout_fail_rate": 0.0,
                 "ledger_violation": False}
SESSION_COOKIE = "paybox_session"
SESSION_TTL = 8 * 3600


def log(msg):
    sys.stdout.write("{} paybox {}\n".format(time.strftime("%Y-%m-%dT%H:%M:%S"), msg))
    sys.stdout.flush()


class State:
    def __init__(self, settings):
        self.settings = settings
        self.lock = threading.Lock()
        self.started_at = time.time()
        self.knobs = dict(KNOB_DEFAULTS)
        self.metrics = {
            "requests_total": 0,
            "requests": {"2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0},
            "payouts_attempted": 0, "payouts_failed": 0, "payouts_settled": 0,
            "deposits": 0, "webhooks_verified": 0, "webhooks_invalid": 0,
            "logins_ok": 0, "logins_failed": 0,
        }
        self.by_status = {}  # (method, status) -> count, for the Prometheus text format

    def bump(self, key, n=1):
        with self.lock:
            self.metrics[key] += n

    def count_status(self, status, method="GET"):
        cls = f"{status // 100}xx"
        with self.lock:
            self.metrics["requests_total"] += 1
            self.metrics["requests"][cls] = self.metrics["requests"].get(cls, 0) + 1
            key = (method, status)
            self.by_status[key] = self.by_status.get(key, 0) + 1

    def prometheus_text(self):
        """Counters in the Prometheus text exposition format (0.0.4), written by hand: the
        image is built offline from Debian packages, without prometheus-client."""
        with self.lock:
            by_status = sorted(self.by_status.items())
            m = dict(self.metrics)
        out = ["# HELP paybox_http_requests_total HTTP requests answered, by method and status.",
               "# TYPE paybox_http_requests_total counter"]
        out += [f'paybox_http_requests_total{{method="{meth}",status="{st}"}} {n}'
                for (meth, st), n in by_status]
        for key, help_ in (("payouts_attempted", "Payouts attempted."),
                           ("payouts_failed", "Payouts the PSP declined."),
                           ("webhooks_verified", "Webhooks whose signature verified."),
                           ("webhooks_invalid", "Webhooks whose signature did not verify.")):
            out += [f"# HELP paybox_{key}_total {help_}", f"# TYPE paybox_{key}_total counter",
                    f"paybox_{key}_total {m[key]}"]
        return "\n".join(out) + "\n"

    def snapshot(self):
        with self.lock:
            m = json.loads(json.dumps(self.metrics))
        att = m["payouts_attempted"]
        tot = m["requests_total"]
        m["payout_failure_rate"] = round(m["payouts_failed"] / att, 4) if att else 0.0
        m["error_5xx_rate"] = round(m["requests"]["5xx"] / tot, 4) if tot else 0.0
        m["since"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started_at))
        m["uptime_seconds"] = int(time.time() - self.started_at)
        m["version"] = self.settings.version
        m["revision"] = self.settings.revision
        return m


def validate_knobs(data):
    if not isinstance(data, dict):
        raise ValueError("knobs must be a JSON object")  # noqa: TRY004
    out = {}
    for k, v in data.items():
        if k not in KNOB_DEFAULTS:
            raise ValueError("unknown knob {!r} (known: {})".format(k, ", ".join(KNOB_DEFAULTS)))
        if isinstance(KNOB_DEFAULTS[k], bool):
            if not isinstance(v, bool):
                raise ValueError(f"{k} must be a boolean")  # noqa: TRY004
            out[k] = v
        else:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
                raise ValueError(f"{k} must be a number in 0..1")
            out[k] = float(v)
    return out


def sign_session(secret, user, expires):
    payload = f"{user}|{expires}"
    mac = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    return urllib.parse.quote(payload + "|" + mac, safe="")


def check_session(secret, cookie_value):
    try:
        user, expires, mac = urllib.parse.unquote(cookie_value).rsplit("|", 2)
        expires = int(expires)
    except ValueError:
        return None
    want = hmac.new(secret.encode(), f"{user}|{expires}".encode(),
                    hashlib.sha256).hexdigest()
    if not hmac.compare_digest(want, mac) or expires < time.time():
        return None
    return user


LOGIN_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Paybox Admin Login</title></head>
<body><h1>Paybox admin</h1>{error}
<form method="post" action="/admin/login">
<label>Username <input name="username" autocomplete="username"></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
<button type="submit">Sign in</button></form></body></html>
"""

DASHBOARD_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Paybox Dashboard</title></head>
<body><h1>Paybox Dashboard</h1>
<p>Signed in as <b>{user}</b>. Version <code>{version}</code>, revision <code>{revision}</code>,
schema <code>{schema}</code>.</p>
<table border="1"><tr><th>Accounts</th><th>Available (cents)</th><th>Held (cents)</th>
<th>Payouts by status</th></tr>
<tr><td>{accounts}</td><td>{available}</td><td>{held}</td><td>{payouts}</td></tr></table>
</body></html>
"""


class Handler(BaseHTTPRequestHandler):
    server_version = "paybox"
    sys_version = ""
    state = None  # set by make_server

    # ---------- plumbing ----------
    def log_message(self, fmt, *args):  # access log is written in _finish
        pass

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _parse(self, raw):
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        # curl -d sends a form content type by default; a body that looks like JSON is JSON
        if ctype == "application/x-www-form-urlencoded" and not raw.lstrip().startswith(b"{"):
            return {k: v[-1] for k, v in urllib.parse.parse_qs(raw.decode("utf-8", "replace")).items()}
        if not raw:
            return {}
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict):
            raise ValueError("body must be a JSON object")  # noqa: TRY004
        return data

    def _send(self, status, body, ctype="application/json", headers=None):
        if not isinstance(body, (bytes, str)):
            body = json.dumps(body, default=str)
        if isinstance(body, str):
            body = body.encode("utf-8")
        if ctype.startswith("text/") and "charset" not in ctype:
            ctype += "; charset=utf-8"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Paybox-Version", self.state.settings.version)
        for k, v in (headers or []):
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self._status = status

    def _json_error(self, status, code, detail=""):
        body = {"error": code}
        if detail:
            body["detail"] = detail
        self._send(status, body)

    def _ops_ok(self):
        tok = self.headers.get("X-Ops-Token") or ""
        if tok and hmac.compare_digest(tok.encode(), self.state.settings.ops_token.encode()):
            return True
        self._json_error(401, "ops_token_required")
        return False

    def _session_user(self):
        raw = self.headers.get("Cookie") or ""
        for part in raw.split(";"):
            name, _, value = part.strip().partition("=")
            if name == SESSION_COOKIE:
                return check_session(self.state.settings.session_secret, value)
        return None

    def _dispatch(self, method):
        self._status = 0
        t0 = time.time()
        path = urllib.parse.urlsplit(self.path).path
        try:
            knobs = self.state.knobs
            if (knobs["error_5xx_rate"] > 0 and not path.startswith("/ops/")
                    and path not in ("/api/health", "/metrics")
                    and random.random() < knobs["error_5xx_rate"]):
                self._json_error(500, "injected_error", "error_5xx_rate knob")
            else:
                route = ROUTES.get((method, path))
                if route is None:
                    if any(p == path for (_, p) in ROUTES):
                        self._json_error(405, "method_not_allowed")
                    else:
                        self._json_error(404, "not_found")
                else:
                    route(self)
        except ledger.LedgerError as e:
            self._json_error(e.status, e.code, e.detail)
        except (ValueError, KeyError, TypeError) as e:
            self._json_error(400, "bad_request", str(e))
        except Exception as e:  # noqa: BLE001
            log(f"error {method} {path}: {type(e).__name__}: {e}")
            if not self._status:
                try:
                    self._json_error(500, "internal_error", type(e).__name__)
                except Exception:  # noqa: BLE001, S110
                    pass
        finally:
            # scrapes are not traffic: counting them would dilute the 5xx ratio
            if self._status and path != "/metrics":
                self.state.count_status(self._status, method)
            if path not in ("/api/health", "/metrics") or self._status != 200:
                ms = (time.time() - t0) * 1000
                log(f"access {method} {path} {self._status} {ms:.1f}ms")

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    # ---------- public ----------
    def health(self):
        st = self.state.settings
        body = {"status": "ok", "version": st.version, "revision": st.revision,
                "db": "ok", "schema": None, "schema_revision": None,
                "schema_expected": st.expected_schema, "schema_state": None}
        try:
            with ledger.connect(st, timeout=2) as conn:
                cur = ledger.schema_revision(conn)
        except Exception as e:  # noqa: BLE001
            body.update(status="degraded", db="down", db_error=type(e).__name__)
        else:
            state = ledger.schema_state(cur, st.expected_schema)
            body.update(schema_revision=cur, schema_state=state,
                        schema="behind" if state == "behind" else cur)
        if self.state.knobs["health_red"]:
            body.update(status="degraded", knob="health_red")
        self._send(200 if body["status"] == "ok" else 503, body)

    def login_form(self):
        self._send(200, LOGIN_PAGE.format(error=""), "text/html")

    def login(self):
        st = self.state.settings
        raw = self._body()
        wants_json = ("json" in (self.headers.get("Content-Type") or "")
                      or raw.lstrip().startswith(b"{"))
        try:
            data = self._parse(raw)
        except ValueError:
            data = {}
        user = str(data.get("username", ""))
        pw = str(data.get("password", ""))
        ok = (hmac.compare_digest(user.encode(), st.admin_user.encode())
              & hmac.compare_digest(pw.encode(), st.admin_password.encode()))
        if not ok:
            self.state.bump("logins_failed")
            log("admin login failed")
            if wants_json:
                self._json_error(401, "invalid_credentials")
            else:
                self._send(401, LOGIN_PAGE.format(error="<p>Invalid credentials</p>"),
                           "text/html")
            return
        self.state.bump("logins_ok")
        log(f"admin login ok user={user!r}")
        exp = int(time.time()) + SESSION_TTL
        token = sign_session(st.session_secret, user, exp)
        cookie = f"{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={SESSION_TTL}"
        if wants_json:
            self._send(200, {"ok": True, "user": user, "redirect": "/dashboard"},
                       headers=[("Set-Cookie", cookie)])
        else:
            self._send(200, '<!doctype html><html><head><title>Signed in</title></head><body>'
                       '<p>Signed in. <a href="/dashboard">Dashboard</a></p></body></html>',
                       "text/html", headers=[("Set-Cookie", cookie)])

    def dashboard(self):
        user = self._session_user()
        if not user:
            self._send(302, "", "text/plain", headers=[("Location", "/admin/login")])
            return
        st = self.state.settings
        try:
            with ledger.connect(st) as conn:
                schema = ledger.schema_revision(conn)
                s = ledger.stats(conn) or {}
        except Exception as e:  # noqa: BLE001
            schema, s = f"unavailable ({type(e).__name__})", {}
        self._send(200, DASHBOARD_PAGE.format(
            user=html.escape(user), version=html.escape(st.version),
            revision=html.escape(st.revision), schema=html.escape(str(schema)),
            accounts=s.get("accounts", "-"), available=s.get("available_cents", "-"),
            held=s.get("held_cents", "-"),
            payouts=html.escape(json.dumps(s.get("payouts", {})))), "text/html")

    def _money_request(self):
        data = self._parse(self._body())
        account = data.get("account")
        amount = data.get("amount_cents")
        key = data.get("idempotency_key")
        if not isinstance(account, str) or not 0 < len(account) <= 64:
            raise ValueError("account must be a non-empty string (max 64)")
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise ValueError("amount_cents must be a positive integer")
        if key is not None and (not isinstance(key, str) or len(key) > 128):
            raise ValueError("idempotency_key must be a string (max 128)")
        return account, amount, key

    def deposits(self):
        account, amount, key = self._money_request()
        with ledger.connect(self.state.settings) as conn:
            status, body = ledger.deposit(conn, account, amount, key)
        if status == 201:
            self.state.bump("deposits")
        log(f"deposit account={account} amount_cents={amount} status={status}")
        self._send(status, body)

    def payouts(self):
        account, amount, key = self._money_request()
        fail_rate = self.state.knobs["payout_fail_rate"]
        with ledger.connect(self.state.settings) as conn:
            status, body = ledger.payout(conn, account, amount, key, fail_rate)
        if not body.get("replay"):
            self.state.bump("payouts_attempted")
            self.state.bump("payouts_failed" if body["status"] == "failed" else "payouts_settled")
        log(f"payout id={body.get('payout_id')} account={account} amount_cents={amount} "
            f"status={body['status']}")
        self._send(status, body)

    def account(self):
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        acct = (q.get("account") or [""])[-1]
        with ledger.connect(self.state.settings) as conn:
            self._send(200, ledger.get_account(conn, acct))

    def webhook(self):
        raw = self._body()
        secret = self.state.settings.webhook_secret
        sig = (self.headers.get("X-Paybox-Signature") or "").strip()
        if sig.lower().startswith("sha256="):
            sig = sig[7:]
        want = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest() if secret else None
        event = "-"
        try:
            ev = json.loads(raw.decode("utf-8")) if raw else {}
            if isinstance(ev, dict):
                event = "{}/{}".format(ev.get("type", "-"), ev.get("id", "-"))
        except ValueError:
            pass
        if want and sig and hmac.compare_digest(want, sig.lower()):
            self.state.bump("webhooks_verified")
            log(f"webhook psp event={event[:120]} Signature Verified")
            self._send(200, {"received": True, "signature": "verified"})
        else:
            self.state.bump("webhooks_invalid")
            log(f"webhook psp event={event[:120]} Signature Invalid")
            self._json_error(401, "invalid_signature")

    def prometheus_metrics(self):
        # unauthenticated like most /metrics endpoints: counters only, loopback-bound
        self._send(200, self.state.prometheus_text(), "text/plain; version=0.0.4")

    # ---------- ops (X-Ops-Token) ----------
    def ops_metrics(self):
        if self._ops_ok():
            self._send(200, self.state.snapshot())

    def ops_ledger_check(self):
        if not self._ops_ok():
            return
        try:
            with ledger.connect(self.state.settings) as conn:
                res = ledger.check(conn, self.state.settings.stuck_payout_seconds)
        except ledger.LedgerError as e:
            self._send(503, {"ok": False, "violations": [{"check": "schema", "detail": e.detail}]})
            return
        except Exception as e:  # noqa: BLE001
            self._send(503, {"ok": False, "violations": [
                {"check": "db", "detail": type(e).__name__}]})
            return
        self._send(200, res)

    def ops_knobs_get(self):
        if self._ops_ok():
            self._send(200, dict(self.state.knobs))

    def ops_knobs_set(self):
        if not self._ops_ok():
            return
        try:
            upd = validate_knobs(self._parse(self._body()))
        except ValueError as e:
            self._json_error(400, "bad_knobs", str(e))
            return
        apply_knobs(self.state, upd)
        self._send(200, dict(self.state.knobs))


def apply_knobs(state, upd):
    if "ledger_violation" in upd:
        with ledger.connect(state.settings) as conn:
            ledger.set_violation(conn, upd["ledger_violation"])
    with state.lock:
        state.knobs.update(upd)
    log(f"knobs set {json.dumps(upd, sort_keys=True)}")


ROUTES = {
    ("GET", "/api/health"): Handler.health,
    ("GET", "/admin/login"): Handler.login_form,
    ("POST", "/admin/login"): Handler.login,
    ("GET", "/dashboard"): Handler.dashboard,
    ("POST", "/api/deposits"): Handler.deposits,
    ("POST", "/api/payouts"): Handler.payouts,
    ("GET", "/api/accounts"): Handler.account,
    ("POST", "/webhooks/psp"): Handler.webhook,
    ("GET", "/ops/metrics"): Handler.ops_metrics,
    ("GET", "/metrics"): Handler.prometheus_metrics,
    ("GET", "/ops/ledger/check"): Handler.ops_ledger_check,
    ("GET", "/ops/knobs"): Handler.ops_knobs_get,
    ("POST", "/ops/knobs"): Handler.ops_knobs_set,
}


def make_server(settings=None):
    settings = settings or Settings()
    state = State(settings)
    handler = type("PayboxHandler", (Handler,), {"state": state})
    srv = ThreadingHTTPServer((settings.bind, settings.port), handler)
    srv.daemon_threads = True
    srv.state = state
    return srv


def main():
    settings = Settings()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # we are PID 1 in the container
    srv = make_server(settings)
    log(f"starting version={settings.version} revision={settings.revision} "
        f"listen={settings.bind}:{settings.port} expected_schema={settings.expected_schema} "
        f"webhook_secret={'set' if settings.webhook_secret else 'unset'}")
    if settings.initial_knobs:
        try:
            apply_knobs(srv.state, validate_knobs(settings.initial_knobs))
        except Exception as e:  # noqa: BLE001
            log(f"PAYBOX_KNOBS not applied: {type(e).__name__}: {e}")
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
