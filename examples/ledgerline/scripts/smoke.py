#!/usr/bin/env python3
"""Ledgerline smoke test: healthz, an operator session, the console and a read-only summary.

    smoke.py BASE_URL
Env: LL_SMOKE_EMAIL, LL_SMOKE_SECRET (the operator's; never printed), LL_SMOKE_RELEASE
(optional: the release healthz must report). One line per check; exit 1 when one fails.
Python, not bash: run by its shebang.
"""
import json
import os
import sys
import urllib.error
import urllib.request


def call(method, url, body=None, token=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
    except OSError as e:
        return 0, type(e).__name__


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: smoke.py BASE_URL")
        return 2
    base = sys.argv[1].rstrip("/")
    fails = 0

    def report(ok, line):
        nonlocal fails
        fails += not ok
        print(("ok   " if ok else "FAIL ") + line)

    status, text = call("GET", f"{base}/healthz")
    try:
        health = json.loads(text)
    except ValueError:
        health = {}
    release = (health.get("build") or {}).get("release")
    want = os.environ.get("LL_SMOKE_RELEASE")
    report(status == 200 and health.get("state") == "up" and (not want or release == want),
           f"healthz: HTTP {status} state={health.get('state')} release={release} "
           f"schema={(health.get('checks') or {}).get('schema')}")

    status, text = call("POST", f"{base}/auth/session",
                        {"email": os.environ.get("LL_SMOKE_EMAIL", ""),
                         "secret": os.environ.get("LL_SMOKE_SECRET", "")})
    try:
        token = json.loads(text)["session"]["token"]
    except (ValueError, KeyError, TypeError):
        token = ""
    report(status == 201 and bool(token), f"session: HTTP {status}, "
           + ("bearer token issued" if token else "no token"))

    status, text = call("GET", f"{base}/console", token=token)
    report(status == 200 and "Ledgerline console" in text, f"console: HTTP {status}")
    status, text = call("GET", f"{base}/v1/ledger/summary", token=token)
    report(status == 200 and '"sum_minor": 0' in text, f"summary: HTTP {status} {text[:80]}")

    print(f"smoke: {'all checks passed' if not fails else f'{fails} check(s) failed'} "
          f"against {base}")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
