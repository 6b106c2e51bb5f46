#!/usr/bin/env bash
# Shared by examples/paybox/build.sh and deploy/build-image.sh (sourced, not run): the cached
# Debian rootfs both build their images from, and one build at a time per machine.
#
#   cache_lock LOCKFILE               hold an exclusive lock (fd 9) until the script exits
#   debian_mirror                     the Debian mirror to debootstrap from
#   cached_rootfs TAR KEY PKGS [PATH...]
#       make TAR (a `debootstrap --variant=minbase --include=PKGS bookworm` tree, apt caches,
#       docs and logs removed, plus each PATH relative to the tree) unless TAR.key says KEY;
#       FORCE=1 rebuilds. Needs say/die from the caller.

cache_lock() {
  # Parallel test workers, CI runs and sessions share the cache, the images' tags and the
  # registry; a run that waited then finds everything up to date.
  exec 9>"$1"
  flock -w 1500 9 || die "another build held $1 for 25 min"
}

debian_mirror() {
  if [ -n "${PAYBOX_DEBIAN_MIRROR:-}" ]; then echo "$PAYBOX_DEBIAN_MIRROR"; return; fi
  local m
  m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
        2>/dev/null | grep -Ev '^\s*#' | grep -Eo '(https?|file)://[^ ]+' \
        | grep -Ev 'security|backports|updates' | grep -E '/debian/?$' | head -n1 || true)
  echo "${m:-http://deb.debian.org/debian}"
}

cached_rootfs() {
  local tar=$1 key=$2 pkgs=$3 root mirror log p
  shift 3
  if [ -z "${FORCE:-}" ] && [ -s "$tar" ] && [ "$(cat "$tar.key" 2>/dev/null)" = "$key" ]; then
    return
  fi
  command -v debootstrap >/dev/null || die "debootstrap missing (apt-get install debootstrap)"
  mirror=$(debian_mirror)
  root=$(mktemp -d "$tar.rootfs.XXXXXX")
  log="${tar%.tar}-debootstrap.log"
  say "debootstrap --variant=minbase --include=$pkgs bookworm from $mirror (~40-60 s)"
  if ! debootstrap --variant=minbase --include="$pkgs" bookworm "$root" "$mirror" >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    rm -rf "$root"
    die "debootstrap failed (log: $log)"
  fi
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
         "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
         "$root"/var/log/*.log "$root"/var/cache/debconf/*-old
  for p in "$@"; do rm -rf "${root:?}"/$p; done   # unquoted: PATH may be a glob
  tar --numeric-owner -C "$root" -cf "$tar.tmp" .
  mv "$tar.tmp" "$tar"
  echo "$key" >"$tar.key"
  rm -rf "$root"
  say "rootfs cached in $tar ($(du -h "$tar" | cut -f1))"
}
