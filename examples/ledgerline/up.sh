#!/usr/bin/env bash
# Start Ledgerline v1: the database (created if missing), api:v1 + gateway (compose --wait),
# then the v1 schema (ll_0001_journal, in ll_schema_version).
#   usage: examples/ledgerline/up.sh [project]        (default: ledgerline)
# Env (the compose file's): LL_DB_DSN, LL_API_PORT, LL_GATEWAY_PORT, LL_GATEWAY_KEY,
# LL_OPERATOR_EMAIL, LL_OPERATOR_SECRET, LL_SESSION_KEY, LL_API_TAG, LL_REGISTRY.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PROJECT="${1:-${LL_COMPOSE_PROJECT:-ledgerline}}"
export LL_DB_DSN="${LL_DB_DSN:-postgresql://postgres@127.0.0.1:5432/ledgerline}"
export LL_API_TAG="${LL_API_TAG:-v1}"
SCHEMA="${LL_BASELINE_SCHEMA:-ll_0001_journal}"
DC=(docker compose -p "$PROJECT" -f "$HERE/compose.yaml")
ALEMBIC=(python3 -m alembic -c /srv/ledgerline/alembic.ini)
say() { printf '[ledgerline-up] %s\n' "$*"; }
T0=$SECONDS
[ -n "${LL_GATEWAY_KEY:-}" ] || say "warning: LL_GATEWAY_KEY unset: the gateway's drain switch refuses everyone"
say "project=$PROJECT api=${LL_API_TAG} api port=${LL_API_PORT:-19181} gateway port=${LL_GATEWAY_PORT:-19180}"
"${DC[@]}" pull -q
"${DC[@]}" run --rm --no-deps -T api python3 - create < "$HERE/scripts/dbctl.py"
"${DC[@]}" up -d --wait --quiet-pull
say "schema: upgrade $SCHEMA"
"${DC[@]}" run --rm --no-deps -T api "${ALEMBIC[@]}" upgrade "$SCHEMA"
say "healthz: $(curl -fsS "http://127.0.0.1:${LL_API_PORT:-19181}/healthz")"
say "drain:   $(curl -fsS "http://127.0.0.1:${LL_GATEWAY_PORT:-19180}/_gateway/drain")"
say "up in $((SECONDS - T0)) s"
