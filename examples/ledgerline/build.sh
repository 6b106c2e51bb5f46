#!/usr/bin/env bash
# Build the Ledgerline images without pulling anything and push them to the local registry.
# Idempotent: an image whose registry copy carries the same commit and base is not rebuilt.
#
#   build/release.git          a git repository made here: the source of each release, tags
#                              v1 (lightweight) and v2 (annotated). Commits are deterministic
#                              (fixed author and dates), so the same tree gives the same SHA.
#   $REG/ledgerline/api:v1|v2  FROM the cached paybox base (debootstrap import), labelled
#                              org.opencontainers.image.revision = the tag's commit
#   $REG/ledgerline/gateway:v1
#   build/releases.json        {"v1": sha, "v2": sha}
#   build/evidence/<tag>/, build/env/ll-prod.env   preflight material (scripts/release_material.py)
#
# Env: LL_REGISTRY (127.0.0.1:5000), LL_BASE_IMAGE (golive/paybox-base:bookworm, made by
#      examples/paybox/build.sh; imported from GOLIVE_CACHE_DIR's cached rootfs when only that
#      exists).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REG="${LL_REGISTRY:-127.0.0.1:5000}"
CACHE="${GOLIVE_CACHE_DIR:-/var/cache/golive}"
BASE_IMAGE="${LL_BASE_IMAGE:-golive/paybox-base:bookworm}"
BUILD="$HERE/build"
REPO="$BUILD/release.git"
LABEL_REV="org.opencontainers.image.revision"
LABEL_BASE="org.opencontainers.image.base.name"
export DOCKER_BUILDKIT=0
T0=$SECONDS

say() { printf '[ledgerline-build] %s\n' "$*"; }
die() { printf '[ledgerline-build] ERROR: %s\n' "$*" >&2; exit 1; }

command -v docker >/dev/null || die "docker CLI not found"
command -v git >/dev/null || die "git not found (apt-get install git)"
docker info >/dev/null 2>&1 || die "docker engine not reachable (run .ci/docker-up.sh)"
curl -fsS -o /dev/null "http://$REG/v2/" || die "registry $REG not answering (run .ci/docker-up.sh)"
mkdir -p "$BUILD" "$CACHE"
exec 8>"$CACHE/.ledgerline-build.lock"
flock -w 1500 8 || die "another ledgerline build held the lock for 25 min"

# ------------------------------------------------------------------ the base
if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  if [ -s "$CACHE/paybox-base.tar" ]; then
    say "base: importing $BASE_IMAGE from the cached rootfs $CACHE/paybox-base.tar"
    docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
      "$CACHE/paybox-base.tar" "$BASE_IMAGE" >/dev/null
  else
    die "base image $BASE_IMAGE missing: run examples/paybox/build.sh first (it caches the rootfs)"
  fi
fi
BASE_REF="$BASE_IMAGE@$(docker image inspect -f '{{index .RootFS.Layers 0}}' "$BASE_IMAGE")"

# ------------------------------------------------- the release git repository
# One commit per release over api/ and gateway/ (v1 without the v2 migration).
export GIT_AUTHOR_NAME="Ledgerline Release" GIT_AUTHOR_EMAIL="release@ledgerline.test"
export GIT_COMMITTER_NAME="$GIT_AUTHOR_NAME" GIT_COMMITTER_EMAIL="$GIT_AUTHOR_EMAIL"
# Made aside and swapped in only when a tag moved: a reader (a running preflight) never finds
# it half-written on a re-run that changes nothing.
FINAL="$REPO"
REPO="$BUILD/release.git.new.$$"
rm -rf "$REPO"
git init -q --bare "$REPO"
git --git-dir="$REPO" symbolic-ref HEAD refs/heads/main
STAGE=$(mktemp -d); trap 'rm -rf "$STAGE" "$BUILD/release.git.new.$$"' EXIT
declare -A REV
parent=()
for v in v1 v2; do
  rm -rf "$STAGE/tree"; mkdir -p "$STAGE/tree"
  (cd "$HERE" && tar --exclude=__pycache__ --exclude='*.pyc' -cf - api gateway) \
    | tar -C "$STAGE/tree" -xf -
  [ "$v" = v1 ] && rm -f "$STAGE"/tree/api/schema/versions/ll_0002_*.py
  export GIT_INDEX_FILE="$STAGE/index.$v"
  git --git-dir="$REPO" --work-tree="$STAGE/tree" add -A .
  tree=$(git --git-dir="$REPO" write-tree)
  date="2026-01-0${v#v}T12:00:00Z"
  commit=$(GIT_AUTHOR_DATE="$date" GIT_COMMITTER_DATE="$date" \
           git --git-dir="$REPO" commit-tree "$tree" "${parent[@]}" -m "ledgerline $v")
  unset GIT_INDEX_FILE
  git --git-dir="$REPO" update-ref refs/heads/main "$commit"
  if [ "$v" = v1 ]; then
    git --git-dir="$REPO" tag "$v" "$commit"
  else
    GIT_COMMITTER_DATE="$date" git --git-dir="$REPO" tag -a -m "Ledgerline $v" "$v" "$commit"
  fi
  REV[$v]=$commit
  parent=(-p "$commit")
done
if [ "$(git --git-dir="$FINAL" rev-parse v1^{commit} v2^{commit} 2>/dev/null)" \
     = "$(printf '%s\n%s' "${REV[v1]}" "${REV[v2]}")" ]; then
  rm -rf "$REPO"
else
  rm -rf "$FINAL" && mv "$REPO" "$FINAL"
fi
REPO="$FINAL"
say "release repo $REPO: v1=${REV[v1]:0:12} v2=${REV[v2]:0:12}"

# -------------------------------------------------------------------- images
# prints "<revision-label> <base-label>" of REG/repo:tag in the registry, or nothing
registry_labels() {
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
    labels = (get("%s/blobs/%s" % (repo, m["config"]["digest"])).get("config") or {}) \
        .get("Labels") or {}
    print(labels.get(label) or "-", labels.get(blabel) or "-")
except Exception:
    pass
PY
}

# ensure REPO TAG COMMIT CONTEXT [build args...]
ensure() {
  local repo=$1 tag=$2 rev=$3 ctx=$4 t=$SECONDS have_rev="" have_base=""; shift 4
  local ref="$REG/$repo:$tag"
  read -r have_rev have_base < <(registry_labels "$repo" "$tag"; echo) || true
  if [ "$have_rev" = "$rev" ] && [ "$have_base" = "$BASE_REF" ]; then
    say "$ref: up to date (commit ${rev:0:12}, in registry)"
    return
  fi
  say "$ref: building commit ${rev:0:12}"
  if ! docker build -q --label "$LABEL_BASE=$BASE_REF" --build-arg "BASE_IMAGE=$BASE_IMAGE" \
       -t "$ref" "$@" "$ctx" >/dev/null 2>"$BUILD/docker-build.err"; then
    cat "$BUILD/docker-build.err" >&2
    die "docker build of $ref failed"
  fi
  rm -f "$BUILD/docker-build.err"
  docker push -q "$ref" >/dev/null
  say "$ref: built and pushed in $((SECONDS - t)) s"
}

for v in v1 v2; do
  mkdir -p "$STAGE/$v"
  git --git-dir="$REPO" archive "$v" | tar -C "$STAGE/$v" -xf -
  ensure ledgerline/api "$v" "${REV[$v]}" "$STAGE/$v/api" \
    --build-arg "LL_RELEASE=$v" --build-arg "LL_COMMIT=${REV[$v]}"
done
ensure ledgerline/gateway v1 "${REV[v1]}" "$STAGE/v1/gateway" \
  --build-arg "LL_GATEWAY_COMMIT=${REV[v1]}"

printf '{"v1": "%s", "v2": "%s"}\n' "${REV[v1]}" "${REV[v2]}" > "$BUILD/releases.json"
python3 "$HERE/scripts/release_material.py" "$BUILD"
say "done in $((SECONDS - T0)) s"
