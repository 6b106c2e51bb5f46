#!/usr/bin/env bash
# Run a Prometheus (Debian's `prometheus` package) on loopback, scraping the paybox app's
# /metrics every second. Foreground (exec): stop it with a signal. Never touches the
# package's systemd service.
#   usage: examples/paybox/prometheus.sh DATA_DIR [PORT (9090)] [APP_PORT (18081)]
set -euo pipefail
DATA="${1:?usage: prometheus.sh DATA_DIR [PORT] [APP_PORT]}"
PORT="${2:-9090}"
APP_PORT="${3:-${PAYBOX_APP_PORT:-18081}}"
BIN="${PROMETHEUS_BIN:-$(command -v prometheus || echo /usr/bin/prometheus)}"
[ -x "$BIN" ] || { echo "[paybox-prometheus] prometheus not installed (apt-get install prometheus)" >&2; exit 127; }
mkdir -p "$DATA/tsdb"
cat > "$DATA/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: paybox
    metrics_path: /metrics
    static_configs:
      - targets: ["127.0.0.1:$APP_PORT"]
YAML
exec "$BIN" --config.file="$DATA/prometheus.yml" --storage.tsdb.path="$DATA/tsdb" \
  --web.listen-address="127.0.0.1:$PORT" --storage.tsdb.retention.time=1d --log.level=warn
