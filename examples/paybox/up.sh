#!/usr/bin/env bash
# Start the Paybox v1 baseline: create the ledger database if missing, start
# app:v1 + edge with compose (--wait), then apply migration 0001_ledger.
#   usage: examples/paybox/up.sh [project]      (default project: paybox)
# Honours the compose env: PAYBOX_APP_TAG, PAYBOX_EDGE_TAG, PAYBOX_APP_PORT,
# PAYBOX_EDGE_PORT, PAYBOX_DATABASE_URL, PAYBOX_OPS_TOKEN, PAYBOX_REGISTRY, ...
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PROJECT="${1:-${PAYBOX_PROJECT:-paybox}}"
export PAYBOX_DATABASE_URL="${PAYBOX_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/paybox}"
export PAYBOX_APP_TAG="${PAYBOX_APP_TAG:-v1}"
MIGRATION="${PAYBOX_BASELINE_MIGRATION:-0001_ledger}"
DC=(docker compose -p "$PROJECT" -f "$HERE/compose.yaml")
say() { printf '[paybox-up] %s\n' "$*"; }
T0=$SECONDS

say "project=$PROJECT app tag=$PAYBOX_APP_TAG app port=${PAYBOX_APP_PORT:-18081} edge port=${PAYBOX_EDGE_PORT:-18080}"
say "pulling images"
"${DC[@]}" pull -q
say "ensuring the ledger database exists"
"${DC[@]}" run --rm --no-deps -T app python3 - create paybox-up < "$HERE/scripts/ledger_db.py"
say "starting app + edge (docker compose up -d --wait)"
"${DC[@]}" up -d --wait --quiet-pull
say "applying migration $MIGRATION (docker compose run --rm app alembic upgrade $MIGRATION)"
"${DC[@]}" run --rm --no-deps -T app alembic upgrade "$MIGRATION"
say "health: $(curl -fsS "http://127.0.0.1:${PAYBOX_APP_PORT:-18081}/api/health")"
say "edge:   $(curl -fsS "http://127.0.0.1:${PAYBOX_EDGE_PORT:-18080}/ops/status")"
say "up in $((SECONDS - T0)) s"
