#!/usr/bin/env bash
# Stop the single-node cluster .ci/k8s-up.sh started, and only that: the processes in its pid
# files (kubelet, the pods' containers via the cluster's own containerd, containerd,
# kube-scheduler, kube-controller-manager, kube-apiserver, etcd), the node address on lo and
# the pods' bridge. Docker, its containerd and the registry are left alone. State (etcd data,
# certificates, images) stays in $STATE, so the next k8s-up.sh starts in seconds; pass --purge
# to remove it too (the cached binaries in $CACHE are always kept).
set -euo pipefail
# shellcheck source=k8s-env.sh
. "$(dirname "${BASH_SOURCE[0]}")/k8s-env.sh"
step() { printf '[k8s-down %(%H:%M:%S)T] %s\n' -1 "$*"; }
[ "$(id -u)" = 0 ] || { echo "[k8s-down] ERROR: run as root" >&2; exit 1; }

stop() {  # stop NAME: TERM the pid this cluster's k8s-up.sh recorded, KILL after 20 s
  local name=$1 pid
  [ -f "$RUN/$name.pid" ] || return 0
  pid=$(cat "$RUN/$name.pid")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    step "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      step "$name did not stop in 20 s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$RUN/$name.pid"
}

# The node's address and the pods' bridge are shared by name: remove them only when this
# call stopped the kubelet that used them (not for another state dir's call).
had_node=0
[ -f "$RUN/kubelet.pid" ] && had_node=1
stop kubelet
# The pods' containers run under shims that outlive containerd: end them through the
# cluster's own containerd (its socket, namespace k8s.io) before stopping it.
if [ -S "$CTRD_SOCK" ] && [ -f "$RUN/containerd.pid" ] && kill -0 "$(cat "$RUN/containerd.pid")" 2>/dev/null; then
  tasks=$(ctr -a "$CTRD_SOCK" -n k8s.io tasks ls -q 2>/dev/null || true)
  if [ -n "$tasks" ]; then
    step "stopping $(echo "$tasks" | wc -l) pod container(s)"
    for t in $tasks; do ctr -a "$CTRD_SOCK" -n k8s.io tasks rm -f "$t" >/dev/null 2>&1 || true; done
  fi
fi
stop containerd
stop kube-scheduler
stop kube-controller-manager
stop kube-apiserver
stop etcd
if [ "$had_node" = 1 ]; then
  case "$(ip -o addr show dev lo)" in *" $NODE_IP/"*) ip addr del "$NODE_IP/32" dev lo ;; esac
  if ip link show "$CNI_BRIDGE" >/dev/null 2>&1; then ip link del "$CNI_BRIDGE"; fi
fi
if [ "${1:-}" = --purge ]; then
  step "removing $STATE and $RUN"
  # kubelet's volume mounts (tmpfs for service-account tokens) under its root dir
  mounts=$(grep -o " $STATE/[^ ]*" /proc/mounts | sort -r || true)
  for m in $mounts; do umount "$m" || true; done
  rm -rf "$STATE" "$RUN"
fi
step "stopped (binaries kept in $BIN)"
