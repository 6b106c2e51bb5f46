#!/usr/bin/env bash
# Build golive's own images offline, on the sample images' Debian base. Idempotent: an image
# whose revision label matches its inputs is left alone, so a repeated run takes seconds.
#
#   golive/bot:latest (+ golive/bot:<version>)  deploy/Dockerfile: golive serve, non-root
#   golive/postgres:15                          deploy/postgres: Debian's PostgreSQL 15
#
# Wheels are made on the host (PyPI is reachable there, not necessarily from a build) into a
# wheelhouse cached per dependency set under $GOLIVE_CACHE_DIR; the build installs from it
# with --no-index. Versions are pinned to what the venv's tests ran against (pip freeze).
#
#   deploy/build-image.sh [VENV]    VENV defaults to .venv (relative to the repo root)
# Env: GOLIVE_CACHE_DIR (/var/cache/golive), GOLIVE_IMAGE (golive/bot), GOLIVE_FORCE=1
#      rebuilds both images, PAYBOX_DEBIAN_MIRROR as for examples/paybox/build.sh.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
VENV="${1:-.venv}"
case "$VENV" in /*) ;; *) VENV="$ROOT/$VENV" ;; esac
CACHE="${GOLIVE_CACHE_DIR:-/var/cache/golive}"
IMAGE="${GOLIVE_IMAGE:-golive/bot}"
BASE_IMAGE="golive/paybox-base:bookworm"
PG_IMAGE="golive/postgres:15"
PG_ROOTFS_IMAGE="golive/postgres-rootfs:15"
PG_TAR="$CACHE/golive-postgres-rootfs.tar"
PG_PKGS="postgresql-15"
PG_KEY="bookworm minbase $PG_PKGS v1"
LABEL_REV="org.opencontainers.image.revision"
export DOCKER_BUILDKIT=0   # classic builder: no buildx needed, never pulls a local FROM
T0=$SECONDS

say() { printf '[golive-image] %s\n' "$*"; }
die() { printf '[golive-image] ERROR: %s\n' "$*" >&2; exit 1; }

docker info >/dev/null 2>&1 || die "docker engine not reachable (run .ci/docker-up.sh)"
docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 \
  || die "$BASE_IMAGE missing (examples/paybox/build.sh makes it; run .ci/docker-up.sh)"
[ -x "$VENV/bin/pip" ] || die "no virtualenv at $VENV"
mkdir -p "$CACHE"
# shellcheck source=examples/paybox/rootfs-cache.sh
. "$ROOT/examples/paybox/rootfs-cache.sh"   # cache_lock, debian_mirror, cached_rootfs
# One build at a time per machine: test workers and sessions (tests/container runs this
# script) would otherwise race on golive/bot:latest and the wheelhouse.
cache_lock "$CACHE/.build-image.lock"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/golive-image.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

label_of() { docker image inspect -f "{{index .Config.Labels \"$LABEL_REV\"}}" "$1" 2>/dev/null || true; }
layer_of() { docker image inspect -f '{{index .RootFS.Layers 0}}' "$1"; }

# sha1 over files and directories (sorted relative paths, exec bit, contents) + a salt
tree_sha() {
  python3 - "$@" <<'PY'
import hashlib, os, sys
salt, paths = sys.argv[1], sys.argv[2:]
h = hashlib.sha1(("golive-image\0%s\0" % salt).encode())
def add(p, rel):
    h.update(("%s\0%s\0" % (rel, "x" if os.access(p, os.X_OK) else "-")).encode())
    with open(p, "rb") as fh:
        h.update(hashlib.sha1(fh.read()).digest())
for top in paths:
    if os.path.isfile(top):
        add(top, os.path.basename(top)); continue
    for d, dirs, files in os.walk(top):
        dirs[:] = sorted(x for x in dirs if x not in ("__pycache__", "build") and not x.endswith(".egg-info"))
        for f in sorted(files):
            if not f.endswith((".pyc", ".pyo")):
                p = os.path.join(d, f)
                add(p, os.path.relpath(p, os.path.dirname(top)))
print(h.hexdigest())
PY
}

# ------------------------------------------------------------------------- golive/bot
build_bot() {
  local t=$SECONDS src="$WORK/src" ctx="$WORK/ctx" freeze key wheels rev version
  # the source the wheel is made from, staged so the shared tree gets no build/ or egg-info
  mkdir -p "$src" "$ctx"
  cp -r "$ROOT/bot" "$ROOT/commands" "$ROOT/runbook" "$ROOT/pyproject.toml" "$ROOT/README.md" \
    "$src/"
  find "$src" -name __pycache__ -prune -exec rm -rf {} +
  freeze=$("$VENV/bin/pip" freeze --exclude-editable --disable-pip-version-check \
             | grep -Ev '^(golive|pip|setuptools|wheel)[= @]' | LC_ALL=C sort)
  key=$(printf '%s\n%s\n' "$(sha1sum "$ROOT/pyproject.toml" | cut -c1-40)" "$freeze" \
          | sha1sum | cut -c1-16)
  wheels="$CACHE/golive-wheels/$key"
  version=$(python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' \
              "$ROOT/pyproject.toml")
  rev=$(tree_sha "bot:$key:$(layer_of "$BASE_IMAGE")" "$src" "$HERE/Dockerfile" \
          "$HERE/healthcheck.py")
  if [ -z "${GOLIVE_FORCE:-}" ] && [ "$(label_of "$IMAGE:latest")" = "$rev" ]; then
    say "$IMAGE:latest up to date (revision ${rev:0:12})"
    return
  fi
  if [ ! -f "$wheels/.complete" ]; then
    say "wheelhouse $key: pip wheel on the host (once per dependency set)"
    rm -rf "$wheels.tmp"; mkdir -p "$wheels.tmp"
    printf '%s\n' "$freeze" >"$WORK/constraints.txt"
    "$VENV/bin/pip" wheel -q --disable-pip-version-check -w "$wheels.tmp" \
      -c "$WORK/constraints.txt" "$src" >"$WORK/pip.log" 2>&1 \
      || { tail -n 30 "$WORK/pip.log" >&2; die "pip wheel failed"; }
    # pip runs the install in the build from its own wheel; setuptools builds golive's wheel
    "$VENV/bin/pip" download -q --disable-pip-version-check --only-binary=:all: \
      -d "$wheels.tmp" pip 'setuptools>=68' wheel >"$WORK/pip.log" 2>&1 \
      || { tail -n 30 "$WORK/pip.log" >&2; die "pip download failed"; }
    rm -f "$wheels.tmp"/golive-*.whl
    touch "$wheels.tmp/.complete"
    rm -rf "$wheels"; mkdir -p "$(dirname "$wheels")"; mv "$wheels.tmp" "$wheels"
  fi
  # golive's own wheel, offline: build isolation takes setuptools from the wheelhouse
  mkdir -p "$ctx/wheels"
  "$VENV/bin/pip" wheel -q --disable-pip-version-check --no-deps --no-index \
    --find-links "$wheels" -w "$ctx/wheels" "$src" >"$WORK/pip.log" 2>&1 \
    || { tail -n 30 "$WORK/pip.log" >&2; die "building golive's wheel failed"; }
  for w in "$wheels"/*.whl; do
    case "$(basename "$w")" in setuptools-*|wheel-*) ;; *) ln "$w" "$ctx/wheels/" 2>/dev/null || cp "$w" "$ctx/wheels/" ;; esac
  done
  cp "$HERE/Dockerfile" "$HERE/healthcheck.py" "$ctx/"
  say "$IMAGE:latest building revision ${rev:0:12}"
  local previous
  previous=$(docker image inspect -f '{{.Id}}' "$IMAGE:latest" 2>/dev/null || true)
  docker build -q --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "GOLIVE_VERSION=$version" \
    --build-arg "GOLIVE_REVISION=$rev" -t "$IMAGE:latest" -t "$IMAGE:$version" "$ctx" \
    >/dev/null 2>"$WORK/build.err" || { cat "$WORK/build.err" >&2; die "docker build failed"; }
  # the replaced build would linger untagged (~350 MB each time the source changes)
  if [ -n "$previous" ] && [ "$previous" != "$(docker image inspect -f '{{.Id}}' "$IMAGE:latest")" ] \
     && [ -z "$(docker image inspect -f '{{join .RepoTags ""}}' "$previous" 2>/dev/null)" ]; then
    docker image rm "$previous" >/dev/null 2>&1 || true   # still used by a container: kept
  fi
  docker image prune -f --filter label=io.golive.stage=build >/dev/null   # the build stage
  say "$IMAGE:latest built in $((SECONDS - t)) s ($(docker image inspect -f '{{.Size}}' "$IMAGE:latest" \
        | awk '{printf "%.0f MB", $1/1e6}'))"
}

# ------------------------------------------------------------------ golive/postgres:15
build_postgres_rootfs() {
  if docker image inspect "$PG_ROOTFS_IMAGE" >/dev/null 2>&1 \
     && [ "$(cat "$PG_TAR.key" 2>/dev/null)" = "$PG_KEY" ] && [ -z "${GOLIVE_FORCE:-}" ]; then
    return
  fi
  local t=$SECONDS
  # the package's own cluster is not used: the image's entrypoint initialises PGDATA
  FORCE="${GOLIVE_FORCE:-}" cached_rootfs "$PG_TAR" "$PG_KEY" "$PG_PKGS" \
    var/lib/postgresql/15 etc/postgresql/15 'var/log/postgresql/*'
  docker import "$PG_TAR" "$PG_ROOTFS_IMAGE" >/dev/null
  say "postgres: rootfs $PG_ROOTFS_IMAGE ready in $((SECONDS - t)) s"
}

build_postgres() {
  build_postgres_rootfs
  local t=$SECONDS rev
  rev=$(tree_sha "postgres:$(layer_of "$PG_ROOTFS_IMAGE")" "$HERE/postgres/Dockerfile" \
          "$HERE/postgres/entrypoint.sh")
  if [ -z "${GOLIVE_FORCE:-}" ] && [ "$(label_of "$PG_IMAGE")" = "$rev" ]; then
    say "$PG_IMAGE up to date (revision ${rev:0:12})"
    return
  fi
  docker build -q --build-arg "ROOTFS_IMAGE=$PG_ROOTFS_IMAGE" --build-arg "GOLIVE_PG_REVISION=$rev" \
    -t "$PG_IMAGE" -f "$HERE/postgres/Dockerfile" "$HERE/postgres" >/dev/null \
    2>"$WORK/build.err" || { cat "$WORK/build.err" >&2; die "docker build of $PG_IMAGE failed"; }
  say "$PG_IMAGE built in $((SECONDS - t)) s"
}

build_postgres
build_bot
say "done in $((SECONDS - T0)) s"
