"""Ledgerline gateway: forwards everything to the API, except while it drains.

- PUT /_gateway/drain {"drain": true|false}, header ``Authorization: Bearer $LL_GATEWAY_KEY``
  (no key configured: every switch is refused, so a gateway recreated without its key can
  never be switched by anyone).
- GET /_gateway/drain -> {"draining": bool, "since": ...} (read-only, no key).
- Draining: every other request gets 503, ``Retry-After`` and a short HTML notice.
- The state is a JSON file in LL_GATEWAY_STATE (a volume): it survives a restart.
"""
import hmac
import http.client
import json
import os
import signal
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP = {"connection", "keep-alive", "te", "trailers", "transfer-encoding", "upgrade",
       "proxy-authenticate", "proxy-authorization", "host", "content-length"}
NOTICE = ("<!doctype html><html><head><title>Ledgerline</title></head><body>"
          "<h1>Ledgerline is paused for an upgrade</h1><p>Transfers resume shortly.</p>"
          "</body></html>")


def log(msg):
    sys.stdout.write("{} ll-gateway {}\n".format(time.strftime("%Y-%m-%dT%H:%M:%S"), msg))
    sys.stdout.flush()


class Drain:
    def __init__(self, state_dir):
        os.makedirs(state_dir, exist_ok=True)
        self.path = os.path.join(state_dir, "drain.json")
        self.lock = threading.Lock()

    def get(self):
        try:
            with open(self.path) as f:
                data = json.load(f)
            return data if isinstance(data, dict) else {"draining": False}
        except (OSError, ValueError):
            return {"draining": False}

    def set(self, draining):
        data = {"draining": bool(draining),
                "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        with self.lock:
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(self.path))
            with os.fdopen(fd, "w") as f:
                json.dump(data, f)
            os.replace(tmp, self.path)
        return data


class Handler(BaseHTTPRequestHandler):
    server_version = "ll-gateway"
    sys_version = ""
    key = b""
    drain = None
    upstream = ("127.0.0.1", 19181)

    def log_message(self, fmt, *args):
        pass

    def _send(self, status, body, ctype="application/json", extra=()):
        if not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self._status = status

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _handle(self):
        self._status = 0
        path = urlsplit(self.path).path
        try:
            if path == "/_gateway/drain":
                self.switch()
            elif self.drain.get().get("draining"):
                self._send(503, NOTICE, "text/html; charset=utf-8", [("Retry-After", "120")])
            else:
                self.forward()
        except Exception as e:  # noqa: BLE001
            log(f"error {self.command} {path}: {type(e).__name__}")
            if not self._status:
                self._send(502, {"problem": "gateway error"})
        finally:
            if path != "/healthz" or self._status != 200:
                log(f"{self.command} {path} -> {self._status}")

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _handle

    def switch(self):
        if self.command in ("GET", "HEAD"):
            self._send(200, self.drain.get())
            return
        if self.command != "PUT":
            self._send(405, {"problem": "use PUT"})
            return
        auth = self.headers.get("Authorization") or ""
        given = auth[7:].strip().encode() if auth[:7].lower() == "bearer " else b""
        if not self.key or not given or not hmac.compare_digest(given, self.key):
            self._send(401, {"problem": "gateway key required (Authorization: Bearer ...)"})
            return
        try:
            want = json.loads(self._body() or b"{}")["drain"]
            if not isinstance(want, bool):
                raise ValueError  # noqa: TRY004 - answered as a 400
        except (ValueError, KeyError, TypeError):
            self._send(400, {"problem": 'expected {"drain": true|false}'})
            return
        state = self.drain.set(want)
        log("drain " + ("ON" if want else "off"))
        self._send(200, state)

    def forward(self):
        body = self._body()
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        headers["Content-Length"] = str(len(body))
        headers["X-Forwarded-For"] = self.client_address[0]
        try:
            conn = http.client.HTTPConnection(*self.upstream, timeout=30)
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            conn.close()
        except (OSError, http.client.HTTPException):
            self._send(502, {"problem": "api unreachable"})
            return
        self.send_response(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() not in HOP and k.lower() not in ("server", "date"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self._status = resp.status


def main():
    env = os.environ
    attrs = {"key": (env.get("LL_GATEWAY_KEY") or "").encode(),
             "drain": Drain(env.get("LL_GATEWAY_STATE", "/var/lib/ll-gateway")),
             "upstream": ("127.0.0.1", int(env.get("LL_API_PORT") or 19181))}
    handler = type("GatewayHandler", (Handler,), attrs)
    port = int(env.get("LL_GATEWAY_PORT") or 19180)
    srv = ThreadingHTTPServer((env.get("LL_GATEWAY_BIND", "127.0.0.1"), port), handler)
    srv.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    log(f"listen :{port} upstream :{attrs['upstream'][1]} "
        f"key={'set' if attrs['key'] else 'MISSING (switch refused)'}")
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    signal.pause()


if __name__ == "__main__":
    main()
