#!/usr/bin/env bash
# Go-live smoke test (runbook B.4): health, admin login, dashboard load.
#   usage: go_live_smoke.sh BASE_URL        e.g. http://127.0.0.1:18080
# Credentials: PAYBOX_ADMIN_USER (admin) / PAYBOX_ADMIN_PASSWORD (paybox-admin-pw).
# Optional: PAYBOX_EXPECT_VERSION=v2 also checks the reported version;
#           PAYBOX_SMOKE_BYPASS_TOKEN=<ops token> sends X-Ops-Token so the checks see through
#           the edge maintenance page (verify the release before re-opening traffic).
# Prints one line per check ("ok   ..." / "FAIL ..."); exits 1 if any check fails.
# The password is passed to curl on stdin and never printed.
set -uo pipefail
BASE="${1:?usage: go_live_smoke.sh BASE_URL}"
BASE="${BASE%/}"
USER_="${PAYBOX_ADMIN_USER:-admin}"
PASS="${PAYBOX_ADMIN_PASSWORD:-paybox-admin-pw}"
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
FAILS=0
H=()
[ -n "${PAYBOX_SMOKE_BYPASS_TOKEN:-}" ] && H=(-H "X-Ops-Token: $PAYBOX_SMOKE_BYPASS_TOKEN")
ok() { printf 'ok   %s\n' "$*"; }
fail() { printf 'FAIL %s\n' "$*"; FAILS=$((FAILS + 1)); }

# 1. health
code=$(curl -sS -m 10 "${H[@]}" -o "$TMP/health" -w '%{http_code}' "$BASE/api/health" 2>"$TMP/err") || code=000
if [ "$code" = 200 ] && grep -q '"status": *"ok"' "$TMP/health"; then
  ver=$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$TMP/health")
  rev=$(sed -n 's/.*"revision": *"\([^"]*\)".*/\1/p' "$TMP/health")
  sch=$(sed -n 's/.*"schema": *"\([^"]*\)".*/\1/p' "$TMP/health")
  if [ -n "${PAYBOX_EXPECT_VERSION:-}" ] && [ "$ver" != "$PAYBOX_EXPECT_VERSION" ]; then
    fail "health: version $ver, expected $PAYBOX_EXPECT_VERSION"
  else
    ok "health: 200 version=$ver revision=${rev:0:12} schema=$sch"
  fi
else
  fail "health: HTTP $code $(head -c 200 "$TMP/health" 2>/dev/null | tr -d '\n') $(head -c 200 "$TMP/err")"
fi

# 2. admin login (password on stdin, never on the command line or in output)
code=$(printf '%s' "$PASS" | curl -sS -m 10 "${H[@]}" -o "$TMP/login" -w '%{http_code}' \
        -c "$TMP/jar" --data-urlencode "username=$USER_" --data-urlencode "password@-" \
        "$BASE/admin/login" 2>"$TMP/err") || code=000
if [ "$code" = 200 ] && grep -q 'paybox_session' "$TMP/jar"; then
  ok "admin login: 200, session cookie issued for $USER_"
else
  fail "admin login: HTTP $code, no session cookie"
fi

# 3. dashboard
code=$(curl -sS -m 10 "${H[@]}" -b "$TMP/jar" -o "$TMP/dash" -w '%{http_code}' \
        "$BASE/dashboard" 2>"$TMP/err") || code=000
if [ "$code" = 200 ] && grep -q '<title>Paybox Dashboard</title>' "$TMP/dash"; then
  ok "dashboard: 200, 'Paybox Dashboard' rendered"
else
  fail "dashboard: HTTP $code"
fi

if [ "$FAILS" -gt 0 ]; then
  printf 'smoke: %d check(s) failed against %s\n' "$FAILS" "$BASE"
  exit 1
fi
printf 'smoke: all checks passed against %s\n' "$BASE"
