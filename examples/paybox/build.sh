#!/usr/bin/env bash
# Build the Paybox images without pulling anything and push them to the local
# registry. Idempotent: skips work whose result (image with the same revision
# label, in the registry) already exists.
#
#   golive/paybox-base:bookworm            debootstrap minbase + python3 libs (cached)
#   $REG/paybox/app:v1, $REG/paybox/app:v2 the app (same tree; v1 ships migration 0001 only)
#   $REG/paybox/edge:v1                    ingress / maintenance page
#   $REG/paybox/tools:v1                   FROM scratch + static busybox (optional extra)
#
# Writes build/revisions.json ({"v1": sha, "v2": sha}) and build/images.json.
# Env: PAYBOX_REGISTRY (127.0.0.1:5000), GOLIVE_CACHE_DIR (/var/cache/golive),
#      PAYBOX_DEBIAN_MIRROR (default: first Debian URI in /etc/apt/sources.list*),
#      PAYBOX_FORCE_BASE=1 to rebuild the base.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REG="${PAYBOX_REGISTRY:-127.0.0.1:5000}"
CACHE="${GOLIVE_CACHE_DIR:-/var/cache/golive}"
BASE_IMAGE="golive/paybox-base:bookworm"
BASE_TAR="$CACHE/paybox-base.tar"
BASE_PKGS="python3,python3-psycopg,python3-psycopg2,python3-alembic,python3-sqlalchemy"
BASE_KEY="bookworm minbase $BASE_PKGS v1"
BUILD="$HERE/build"
export DOCKER_BUILDKIT=0   # classic builder: no buildx needed, never pulls a local FROM
LABEL_REV="org.opencontainers.image.revision"
LABEL_BASE="org.opencontainers.image.base.name"   # value: golive/paybox-base@<rootfs layer digest>
T0=$SECONDS

say() { printf '[paybox-build] %s\n' "$*"; }
die() { printf '[paybox-build] ERROR: %s\n' "$*" >&2; exit 1; }

command -v docker >/dev/null || die "docker CLI not found"
docker info >/dev/null 2>&1 || die "docker engine not reachable (run .ci/docker-up.sh)"
curl -fsS -o /dev/null "http://$REG/v2/" || die "registry $REG not answering (run .ci/docker-up.sh)"
mkdir -p "$CACHE" "$BUILD"
# shellcheck source=examples/paybox/rootfs-cache.sh
. "$HERE/rootfs-cache.sh"   # cache_lock, debian_mirror, cached_rootfs (shared with deploy/)
cache_lock "$CACHE/.paybox-build.lock"

# ---------------------------------------------------------------- base image
build_base() {
  local t=$SECONDS
  if [ -z "${PAYBOX_FORCE_BASE:-}" ] && docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 \
     && [ "$(cat "$BASE_TAR.key" 2>/dev/null)" = "$BASE_KEY" ]; then
    say "base: $BASE_IMAGE present (cached), skipping"
    return
  fi
  FORCE="${PAYBOX_FORCE_BASE:-}" cached_rootfs "$BASE_TAR" "$BASE_KEY" "$BASE_PKGS"
  docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    "$BASE_TAR" "$BASE_IMAGE" >/dev/null
  say "base: imported $BASE_IMAGE in $((SECONDS - t)) s"
}

# ------------------------------------------------------------------- helpers
# sha1 over a build context (sorted paths, exec bit, contents) + a salt
tree_sha() {
  python3 - "$1" "$2" <<'PY'
import hashlib, os, sys
root, salt = sys.argv[1], sys.argv[2]
h = hashlib.sha1(("paybox\0%s\0" % salt).encode())
for d, dirs, files in os.walk(root):
    dirs[:] = sorted(x for x in dirs if x != "__pycache__")
    for f in sorted(files):
        if f.endswith((".pyc", ".pyo")):
            continue
        p = os.path.join(d, f)
        rel = os.path.relpath(p, root)
        mode = "x" if os.access(p, os.X_OK) else "-"
        h.update(("%s\0%s\0" % (rel, mode)).encode())
        with open(p, "rb") as fh:
            h.update(hashlib.sha1(fh.read()).digest())
print(h.hexdigest())
PY
}

# prints "<config-digest> <revision-label> <base-label>" of REG/repo:tag, or nothing
registry_info() {
  python3 - "$REG" "$1" "$2" "$LABEL_REV" "$LABEL_BASE" <<'PY'
import json, sys, urllib.request
reg, repo, tag, label, blabel = sys.argv[1:6]
def get(path, accept=None):
    req = urllib.request.Request("http://%s/v2/%s" % (reg, path))
    if accept:
        req.add_header("Accept", accept)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)
try:
    m = get("%s/manifests/%s" % (repo, tag), "application/vnd.docker.distribution.manifest.v2+json,"
            "application/vnd.oci.image.manifest.v1+json")
    digest = m["config"]["digest"]
    cfg = get("%s/blobs/%s" % (repo, digest))
    labels = (cfg.get("config") or {}).get("Labels") or {}
    print(digest, labels.get(label) or "-", labels.get(blabel) or "-")
except Exception:
    pass
PY
}

# ensure_image REPO TAG REVISION CONTEXT [docker build args...]
ensure_image() {
  local repo=$1 tag=$2 rev=$3 ctx=$4; shift 4
  local ref="$REG/$repo:$tag" t=$SECONDS local_rev local_base local_id
  local remote_digest="" remote_rev="" remote_base=""
  local_rev=$(docker image inspect -f "{{index .Config.Labels \"$LABEL_REV\"}}" "$ref" 2>/dev/null || true)
  local_base=$(docker image inspect -f "{{index .Config.Labels \"$LABEL_BASE\"}}" "$ref" 2>/dev/null || true)
  local_id=$(docker image inspect -f '{{.Id}}' "$ref" 2>/dev/null || true)
  read -r remote_digest remote_rev remote_base < <(registry_info "$repo" "$tag"; echo) || true
  # a local image on another base (base rebuilt) is stale; a fresh machine (no local
  # image) takes the registry's copy when its source revision matches
  if [ -n "$BASE_REF" ] && [ -n "$local_id" ] && [ "$local_base" != "$BASE_REF" ]; then
    local_rev="stale-base"
  fi
  if [ "$local_rev" = "$rev" ]; then
    if [ "$remote_digest" = "$local_id" ]; then
      say "$ref: up to date (revision ${rev:0:12}, in registry)"
      return
    fi
    say "$ref: built (revision ${rev:0:12}), pushing"
    docker push -q "$ref" >/dev/null
    say "$ref: pushed in $((SECONDS - t)) s"
    return
  fi
  if [ "$remote_rev" = "$rev" ] && { [ -z "$local_id" ] || [ -z "$BASE_REF" ] \
       || [ "$remote_base" = "$BASE_REF" ]; }; then
    say "$ref: in registry with revision ${rev:0:12}, pulling instead of rebuilding"
    docker pull -q "$ref" >/dev/null
    return
  fi
  say "$ref: building revision ${rev:0:12}"
  local base_label=()
  [ -n "$BASE_REF" ] && base_label=(--label "$LABEL_BASE=$BASE_REF")
  if ! docker build -q --label "$LABEL_REV=$rev" "${base_label[@]}" -t "$ref" "$@" "$ctx" \
       >/dev/null \
       2>"$BUILD/docker-build.err"; then
    cat "$BUILD/docker-build.err" >&2
    die "docker build of $ref failed"
  fi
  rm -f "$BUILD/docker-build.err"
  docker push -q "$ref" >/dev/null
  say "$ref: built and pushed in $((SECONDS - t)) s"
}

# ---------------------------------------------------------------------- main
build_base
BASE_REF="golive/paybox-base@$(docker image inspect -f "{{index .RootFS.Layers 0}}" "$BASE_IMAGE")"  # layer digest: stable across re-imports of the cached tar

declare -A REV
CTX="$BUILD/ctx"
rm -rf "$CTX"; mkdir -p "$CTX"
for v in v1 v2; do
  d="$CTX/app-$v"
  mkdir -p "$d"
  (cd "$HERE/app" && tar --exclude=__pycache__ --exclude='*.pyc' -cf - .) | tar -C "$d" -xf -
  if [ "$v" = v1 ]; then
    rm -f "$d"/migrations/versions/0002_*.py   # 0002_payout_idempotency arrives with v2
  fi
  REV[$v]=$(tree_sha "$d" "app:$v")
  ensure_image paybox/app "$v" "${REV[$v]}" "$d" \
    --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "PAYBOX_VERSION=$v" \
    --build-arg "PAYBOX_REVISION=${REV[$v]}"
done

d="$CTX/edge"
mkdir -p "$d"
(cd "$HERE/edge" && tar --exclude=__pycache__ --exclude='*.pyc' -cf - .) | tar -C "$d" -xf -
EDGE_REV=$(tree_sha "$d" "edge:v1")
ensure_image paybox/edge v1 "$EDGE_REV" "$d" \
  --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "PAYBOX_EDGE_VERSION=v1" \
  --build-arg "PAYBOX_EDGE_REVISION=$EDGE_REV"

TOOLS_REV=""
BUSYBOX=""
for bb in /bin/busybox /usr/bin/busybox; do
  if [ -x "$bb" ] && { LC_ALL=C ldd "$bb" 2>&1 || true; } | grep -q 'not a dynamic'; then BUSYBOX=$bb; break; fi
done
if [ -n "$BUSYBOX" ]; then
  d="$CTX/tools"
  mkdir -p "$d"
  cp -L "$BUSYBOX" "$d/busybox"
  cat > "$d/Dockerfile" <<'DF'
FROM scratch
ARG PAYBOX_TOOLS_REVISION=0000000000000000000000000000000000000000
LABEL org.opencontainers.image.title="paybox-tools" org.opencontainers.image.version="v1" \
      org.opencontainers.image.revision="${PAYBOX_TOOLS_REVISION}"
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
ENV PATH=/bin
CMD ["/bin/sh"]
DF
  TOOLS_REV=$(tree_sha "$d" "tools:v1")
  BASE_REF="" ensure_image paybox/tools v1 "$TOOLS_REV" "$d" \
    --build-arg "PAYBOX_TOOLS_REVISION=$TOOLS_REV"
else
  say "tools: no static busybox found (apt-get install busybox-static), skipping paybox/tools"
fi
rm -rf "$CTX"

printf '{"v1": "%s", "v2": "%s"}\n' "${REV[v1]}" "${REV[v2]}" > "$BUILD/revisions.json"
python3 - "$BUILD/images.json" "$REG" "${REV[v1]}" "${REV[v2]}" "$EDGE_REV" "$TOOLS_REV" <<'PY'
import json, sys
out, reg, v1, v2, edge, tools = sys.argv[1:7]
images = {
    "app:v1": {"image": reg + "/paybox/app:v1", "version": "v1", "revision": v1,
               "schema_head": "0001_ledger"},
    "app:v2": {"image": reg + "/paybox/app:v2", "version": "v2", "revision": v2,
               "schema_head": "0002_payout_idempotency"},
    "edge:v1": {"image": reg + "/paybox/edge:v1", "version": "v1", "revision": edge},
}
if tools:
    images["tools:v1"] = {"image": reg + "/paybox/tools:v1", "version": "v1", "revision": tools}
json.dump({"registry": reg, "base": "golive/paybox-base:bookworm", "images": images},
          open(out, "w"), indent=2, sort_keys=True)
PY
say "wrote build/revisions.json: v1=${REV[v1]} v2=${REV[v2]}"
# preflight material: RC evidence per release, prod env files, fake GitHub state
python3 "$HERE/scripts/make_evidence.py" "$BUILD" "$BUILD/revisions.json"
say "done in $((SECONDS - T0)) s"
