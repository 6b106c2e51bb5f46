"""A small stand-in for the GitHub REST API (and Stripe's balance call), stdlib only.

GitHub itself cannot be reached from the test machines, so tests and the demo point the
release-freeze check here. It answers like GitHub for:

  GET /repos/{o}/{r}/git/ref/tags/{tag}      lightweight or annotated (nested) tags
  GET /repos/{o}/{r}/git/tags/{sha}          annotated tag objects
  GET /repos/{o}/{r}/branches/{b}/protection classic protection (locked / unlocked /
                                              restrictions-only / 404)
  GET /repos/{o}/{r}/rules/branches/{b}      active rules (ruleset / ruleset-bypass)
  GET /repos/{o}/{r}/rulesets/{id}
  GET /v1/balance                            Stripe: {"livemode": ...}

An ``/api/v3`` prefix (GitHub Enterprise) is accepted. ``POST /__state`` merges JSON into the
state (switch the protection mode, tags, rate limiting); ``GET /__requests`` lists what was
asked, with the API version header and whether a token was sent.

    python3 examples/paybox/fakegithub/server.py --port 0 [--state state.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import threading
import time
from pathlib import Path
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RULESET_ID = 4242
DEFAULT_STATE = {
    "repo": "acme/paybox",
    "tags": {},  # name -> {"commit": sha, "annotated": bool, "depth": 1}
    "protection": "locked",
    "ratelimit_remaining_zero": 0,  # answer this many requests with a rate-limit 403
    "ratelimit_reset_in": 1,
    "token": None,  # when set, requests without "Bearer <token>" get 401
    "stripe_livemode": True,
}


def tag_object_sha(tag: str, level: int) -> str:
    return hashlib.sha1(f"tag-object:{tag}:{level}".encode()).hexdigest()


class Handler(BaseHTTPRequestHandler):
    server_version = "fakegithub/1"

    def log_message(self, *args):  # quiet
        pass

    def _send(self, code: int, body, headers: dict | None = None):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-RateLimit-Limit", "5000")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        if self.path != "/__state":
            return self._send(404, {"message": "Not Found"})
        n = int(self.headers.get("Content-Length") or 0)
        with self.server.lock:
            self.server.state.update(json.loads(self.rfile.read(n) or b"{}"))
        return self._send(200, self.server.state)

    def do_GET(self):
        st = self.server.state
        path = self.path.split("?", 1)[0]
        if path == "/__requests":
            return self._send(200, self.server.requests)
        with self.server.lock:
            self.server.requests.append({
                "path": path, "api_version": self.headers.get("X-GitHub-Api-Version"),
                "authorized": bool(self.headers.get("Authorization"))})
            if st["ratelimit_remaining_zero"] > 0 and path.startswith(("/repos", "/api/v3")):
                st["ratelimit_remaining_zero"] -= 1
                reset = int(time.time() + st["ratelimit_reset_in"])
                return self._send(403, {"message": "API rate limit exceeded"},
                                  {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)})
        if path == "/v1/balance":
            return self._send(200, {"object": "balance", "livemode": st["stripe_livemode"]})
        path = path.removeprefix("/api/v3")
        want = st.get("token")
        if want and path.startswith("/repos") and self.headers.get("Authorization") != f"Bearer {want}":
            return self._send(401, {"message": "Bad credentials"})
        m = re.fullmatch(r"/repos/([^/]+/[^/]+)(/.*)", path)
        if not m or m.group(1) != st["repo"]:
            return self._send(404, {"message": "Not Found"})
        return self._repo(m.group(2), st)

    def _repo(self, rest: str, st: dict):
        if m := re.fullmatch(r"/git/ref/tags/(.+)", rest):
            tag = st["tags"].get(m.group(1))
            if tag is None:
                return self._send(404, {"message": "Not Found"})
            obj = ({"type": "tag", "sha": tag_object_sha(m.group(1), 1)} if tag.get("annotated")
                   else {"type": "commit", "sha": tag["commit"]})
            return self._send(200, {"ref": f"refs/tags/{m.group(1)}", "object": obj})
        if m := re.fullmatch(r"/git/tags/([0-9a-f]{40})", rest):
            for name, tag in st["tags"].items():
                depth = int(tag.get("depth", 1))
                for level in range(1, depth + 1):
                    if tag.get("annotated") and tag_object_sha(name, level) == m.group(1):
                        obj = ({"type": "tag", "sha": tag_object_sha(name, level + 1)}
                               if level < depth else {"type": "commit", "sha": tag["commit"]})
                        return self._send(200, {"sha": m.group(1), "tag": name, "object": obj})
            return self._send(404, {"message": "Not Found"})
        mode = st["protection"]
        if re.fullmatch(r"/branches/[^/]+/protection", rest):
            if mode in ("404", "ruleset", "ruleset-bypass"):
                return self._send(404, {"message": "Branch not protected"})
            locked = mode == "locked"
            body = {"enforce_admins": {"enabled": locked or mode == "restrictions-only"},
                    "lock_branch": {"enabled": locked},
                    "restrictions": {"users": [], "teams": []} if mode == "restrictions-only"
                    else None}
            return self._send(200, body)
        if re.fullmatch(r"/rules/branches/[^/]+", rest):
            if mode.startswith("ruleset"):
                return self._send(200, [{"type": "update", "ruleset_id": RULESET_ID,
                                         "ruleset_source_type": "Repository"}])
            return self._send(200, [])
        if rest == f"/rulesets/{RULESET_ID}" and mode.startswith("ruleset"):
            bypass = [{"actor_id": 5, "actor_type": "RepositoryRole",
                       "bypass_mode": "always"}] if mode == "ruleset-bypass" else []
            return self._send(200, {"id": RULESET_ID, "name": "release-freeze",
                                    "enforcement": "active", "bypass_actors": bypass})
        return self._send(404, {"message": "Not Found"})


def serve(port: int = 0, state: dict | None = None) -> ThreadingHTTPServer:
    """Start the server on 127.0.0.1:``port`` in a daemon thread; ``.server_port`` tells."""
    srv = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    srv.daemon_threads = True
    srv.state = {**DEFAULT_STATE, **(state or {})}
    srv.requests = []
    srv.lock = threading.Lock()
    threading.Thread(target=srv.serve_forever, daemon=True, name="fakegithub").start()
    return srv


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--state", help="JSON file with the initial state")
    args = ap.parse_args()
    state = json.loads(Path(args.state).read_text()) if args.state else None
    srv = serve(args.port, state)
    print(f"fakegithub listening on http://127.0.0.1:{srv.server_port}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
