"""Paybox edge (ingress): a small reverse proxy with a persistent maintenance switch.

- Forwards every request to the app (PAYBOX_UPSTREAM, default
  http://127.0.0.1:$PAYBOX_APP_PORT).
- POST /ops/maintenance {"enabled": bool, "message"?: str} with X-Ops-Token.
- GET /ops/status -> {"maintenance": bool, "upstream": "ok"|"down", ...} (always 200).
- Maintenance on: public requests get 503 + HTML page + Retry-After. Operator
  traffic (/ops/* paths, or any request carrying a valid X-Ops-Token) still
  passes, so the cutover can verify the new release behind the maintenance page.
- The state is a JSON file in PAYBOX_EDGE_STATE_DIR (a named volume), so it
  survives an app redeploy and an edge restart.
- Upstream unreachable -> 502.
"""
import hmac
import html
import http.client
import json
import os
import signal
import sys
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
              "trailers", "transfer-encoding", "upgrade", "proxy-connection"}

MAINTENANCE_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Paybox - Scheduled maintenance</title></head>
<body style="font-family: sans-serif; text-align: center; margin-top: 10%">
<h1>Scheduled maintenance</h1>
<p>{message}</p>
<p>We will be back shortly. Please retry in a few minutes.</p>
</body></html>
"""


def log(msg):
    sys.stdout.write("{} paybox-edge {}\n".format(time.strftime("%Y-%m-%dT%H:%M:%S"), msg))
    sys.stdout.flush()


class Config:
    def __init__(self, env=None):
        env = os.environ if env is None else env
        self.version = env.get("PAYBOX_EDGE_VERSION", "dev")
        self.revision = env.get("PAYBOX_EDGE_REVISION", "0" * 40)
        self.bind = env.get("PAYBOX_BIND", "127.0.0.1")
        self.port = int(env.get("PAYBOX_EDGE_PORT") or 18080)
        app_port = env.get("PAYBOX_APP_PORT") or "18081"
        self.upstream = urllib.parse.urlsplit(
            env.get("PAYBOX_UPSTREAM") or f"http://127.0.0.1:{app_port}")
        self.ops_token = env.get("PAYBOX_OPS_TOKEN", "paybox-ops-token")
        self.state_dir = env.get("PAYBOX_EDGE_STATE_DIR", "/var/lib/paybox-edge")
        self.retry_after = env.get("PAYBOX_RETRY_AFTER", "300")
        self.timeout = float(env.get("PAYBOX_UPSTREAM_TIMEOUT", "30"))


class MaintenanceStore:
    """Maintenance flag persisted as JSON; re-read on every request (cheap, and
    lets an operator flip it by editing the file in the volume)."""

    def __init__(self, state_dir):
        self.path = os.path.join(state_dir, "maintenance.json")
        self.lock = threading.Lock()
        os.makedirs(state_dir, exist_ok=True)

    def get(self):
        try:
            with open(self.path) as f:
                data = json.load(f)
            return data if isinstance(data, dict) else {"enabled": False}
        except (OSError, ValueError):
            return {"enabled": False}

    def set(self, enabled, message=None):
        data = {"enabled": bool(enabled), "changed_at": time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "message": message or ""}
        with self.lock:
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(self.path), prefix=".maint-")
            with os.fdopen(fd, "w") as f:
                json.dump(data, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        return data


class Handler(BaseHTTPRequestHandler):
    server_version = "paybox-edge"
    sys_version = ""
    cfg = None
    store = None

    def log_message(self, fmt, *args):
        pass

    def _send(self, status, body, ctype="application/json", headers=()):
        if not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self._status = status

    def _token_ok(self):
        tok = self.headers.get("X-Ops-Token") or ""
        return bool(tok) and hmac.compare_digest(tok.encode(), self.cfg.ops_token.encode())

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _upstream_conn(self, timeout):
        u = self.cfg.upstream
        cls = http.client.HTTPSConnection if u.scheme == "https" else http.client.HTTPConnection
        return cls(u.hostname, u.port or (443 if u.scheme == "https" else 80), timeout=timeout)

    def upstream_status(self):
        try:
            conn = self._upstream_conn(3)
            conn.request("GET", "/api/health")
            resp = conn.getresponse()
            resp.read()
            conn.close()
            return ("ok" if resp.status == 200 else "down"), resp.status
        except (OSError, http.client.HTTPException):
            return "down", None

    def handle_one(self):
        self._status = 0
        t0 = time.time()
        path = urllib.parse.urlsplit(self.path).path
        try:
            if path == "/ops/status" and self.command in ("GET", "HEAD"):
                m = self.store.get()
                up, code = self.upstream_status()
                self._send(200, {"maintenance": bool(m.get("enabled")),
                                 "maintenance_since": m.get("changed_at"),
                                 "maintenance_message": m.get("message", ""),
                                 "upstream": up, "upstream_http": code,
                                 "edge_version": self.cfg.version,
                                 "edge_revision": self.cfg.revision})
            elif path == "/ops/maintenance":
                self.maintenance()
            else:
                self.proxy(path)
        except Exception as e:  # noqa: BLE001
            log(f"error {self.command} {path}: {type(e).__name__}: {e}")
            if not self._status:
                try:
                    self._send(500, {"error": "edge_error"})
                except Exception:  # noqa: BLE001, S110
                    pass
        finally:
            ms = (time.time() - t0) * 1000
            log(f"access {self.command} {path} {self._status} {ms:.1f}ms")

    def maintenance(self):
        if self.command == "GET":
            m = self.store.get()
            self._send(200, {"maintenance": bool(m.get("enabled")),
                             "maintenance_since": m.get("changed_at")})
            return
        if self.command != "POST":
            self._send(405, {"error": "method_not_allowed"})
            return
        if not self._token_ok():
            self._send(401, {"error": "ops_token_required"})
            return
        try:
            data = json.loads(self._body() or b"{}")
            enabled = data["enabled"]
            if not isinstance(enabled, bool):
                raise ValueError  # noqa: TRY004
        except (ValueError, KeyError, TypeError):
            self._send(400, {"error": "bad_request", "detail": 'expected {"enabled": true|false}'})
            return
        msg = data.get("message") if isinstance(data.get("message"), str) else ""
        state = self.store.set(enabled, msg[:500])
        log("maintenance %s" % ("ENABLED" if enabled else "disabled"))
        self._send(200, {"maintenance": state["enabled"], "maintenance_since": state["changed_at"]})

    def proxy(self, path):
        m = self.store.get()
        if m.get("enabled") and not path.startswith("/ops/") and not self._token_ok():
            self._send(503, MAINTENANCE_PAGE.format(message=html.escape(
                m.get("message") or "Paybox is undergoing scheduled maintenance.")),
                "text/html; charset=utf-8",
                headers=[("Retry-After", self.cfg.retry_after), ("X-Paybox-Maintenance", "on")])
            return
        body = self._body()
        headers = {}
        for k, v in self.headers.items():
            if k.lower() in HOP_BY_HOP or k.lower() in ("host", "content-length"):
                continue
            headers[k] = v
        client = self.client_address[0]
        prior = self.headers.get("X-Forwarded-For")
        headers["X-Forwarded-For"] = f"{prior}, {client}" if prior else client
        headers["X-Forwarded-Proto"] = "http"
        headers["X-Forwarded-Host"] = self.headers.get("Host", "")
        headers["Host"] = self.cfg.upstream.netloc
        headers["Content-Length"] = str(len(body))
        headers["Connection"] = "close"
        try:
            conn = self._upstream_conn(self.cfg.timeout)
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            conn.close()
        except (OSError, http.client.HTTPException) as e:
            log(f"upstream down: {type(e).__name__}")
            self._send(502, {"error": "bad_gateway", "detail": "upstream unavailable"})
            return
        self.send_response(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() in HOP_BY_HOP or k.lower() in ("content-length", "server", "date"):
                continue
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self._status = resp.status

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = handle_one


def make_server(cfg=None):
    cfg = cfg or Config()
    handler = type("EdgeHandler", (Handler,), {"cfg": cfg, "store": MaintenanceStore(cfg.state_dir)})
    srv = ThreadingHTTPServer((cfg.bind, cfg.port), handler)
    srv.daemon_threads = True
    return srv


def main():
    cfg = Config()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    srv = make_server(cfg)
    m = srv.RequestHandlerClass.store.get()
    log(f"starting version={cfg.version} listen={cfg.bind}:{cfg.port} "
        f"upstream={cfg.upstream.geturl()} maintenance={bool(m.get('enabled'))}")
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
