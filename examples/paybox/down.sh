#!/usr/bin/env bash
# Stop the Paybox stack and remove its containers and volumes (edge maintenance state).
#   usage: examples/paybox/down.sh [project]    (default project: paybox)
# Set PAYBOX_DROP_DB=1 to also drop the ledger database.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PROJECT="${1:-${PAYBOX_PROJECT:-paybox}}"
DC=(docker compose -p "$PROJECT" -f "$HERE/compose.yaml")
echo "[paybox-down] docker compose -p $PROJECT down -v --remove-orphans"
if [ "${PAYBOX_DROP_DB:-}" = 1 ]; then
  # drops the database named in PAYBOX_DATABASE_URL (default: paybox)
  export PAYBOX_DATABASE_URL="${PAYBOX_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/paybox}"
  "${DC[@]}" run --rm --no-deps -T app python3 - drop paybox-down < "$HERE/scripts/ledger_db.py"
fi
"${DC[@]}" down -v --remove-orphans
