#!/usr/bin/env bash
# Remove the Ledgerline project's containers and volumes; LL_DROP_DB=1 also drops LL_DB_DSN's
# database.   usage: examples/ledgerline/down.sh [project]        (default: ledgerline)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PROJECT="${1:-${LL_COMPOSE_PROJECT:-ledgerline}}"
DC=(docker compose -p "$PROJECT" -f "$HERE/compose.yaml")
if [ "${LL_DROP_DB:-}" = 1 ]; then
  export LL_DB_DSN="${LL_DB_DSN:-postgresql://postgres@127.0.0.1:5432/ledgerline}"
  "${DC[@]}" run --rm --no-deps -T api python3 - drop < "$HERE/scripts/dbctl.py"
fi
"${DC[@]}" down -v --remove-orphans --timeout 5
