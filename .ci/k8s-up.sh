#!/usr/bin/env bash
# A real single-node Kubernetes cluster on this machine, on 127.0.0.1, for golive's Kubernetes
# tests and demos. Idempotent: when the cluster is up (API ready, node Ready) it returns at once.
#
#   .ci/k8s-up.sh            build what is missing, start what is not running
#   .ci/k8s-down.sh          stop everything this script started (and only that)
#
# What it does:
#   1. apt packages: etcd-server (3.4, accepted by 1.34), containerd, containernetworking-plugins,
#      iptables, conntrack, socat, openssl, gcc + libc6-dev (the static pause binary).
#   2. Builds kube-apiserver, kube-controller-manager, kube-scheduler and kubelet of ONE pinned
#      release ($K8S_VERSION) from the Go module proxy: a generated module requiring
#      k8s.io/kubernetes@$K8S_VERSION whose k8s.io/* staging modules (the replace list of the
#      kubernetes module's own go.mod) are pinned to the matching v0.x release. Binaries are
#      cached in $CACHE/bin-$K8S_VERSION; cached ones are not rebuilt.
#   3. The pause image, built locally (nothing can be pulled from outside): kubernetes'
#      build/pause/linux/pause.c from the module cache, compiled statically, imported into
#      Docker as a one-file image and pushed to $REGISTRY/pause:$PAUSE_TAG.
#   4. A CA, serving/client certificates, a service-account key pair and kubeconfigs
#      (openssl), generated once under $STATE/pki.
#   5. Starts, detached (setsid nohup, like docker-up.sh's dockerd): etcd, kube-apiserver,
#      kube-controller-manager, kube-scheduler, a SEPARATE containerd (own config, root, state
#      and socket; CRI plugin on; $REGISTRY as a plain-HTTP registry; Docker's containerd is
#      left alone) and the kubelet on it with Debian's CNI plugins (bridge + host-local).
#   6. Waits for the node to be Ready and prints how long the build and the start took.
#
# Networking (why no kube-proxy, no DNS): pods get addresses on a local bridge ($POD_CIDR),
# reachable from this machine; the node's address is $NODE_IP, a non-loopback address put on
# `lo` (the kubelet refuses a loopback node IP; the machine has no dummy-interface support),
# so nothing listens beyond this machine. Services' ClusterIPs are not routed (no kube-proxy):
# the deployer reaches workloads with `hostNetwork: true` (like the sample compose stack's
# host networking) or by pod IP, which needs no extra moving part.
#
# Files:  admin kubeconfig  $STATE/admin.kubeconfig  (/var/lib/golive-k8s/admin.kubeconfig)
#         logs              $LOGS/<component>.log    (/var/log/golive-k8s/)
#         pids              $RUN/<component>.pid     (/run/golive-k8s/)
# Env: GOLIVE_K8S_VERSION, GOLIVE_K8S_CACHE, GOLIVE_K8S_STATE, GOLIVE_K8S_LOGS, GOLIVE_K8S_RUN,
#      GOLIVE_K8S_API_PORT (6443), GOLIVE_K8S_ETCD_PORT (2379; peer = +1), GOLIVE_K8S_NODE_IP,
#      GOLIVE_K8S_POD_CIDR, GOLIVE_K8S_NODE (node name), GOLIVE_REGISTRY (127.0.0.1:5000).
set -euo pipefail

# shellcheck source=k8s-env.sh
. "$(dirname "${BASH_SOURCE[0]}")/k8s-env.sh"
T0=$SECONDS

step() { printf '[k8s-up %(%H:%M:%S)T] %s\n' -1 "$*"; }
die() { printf '[k8s-up] ERROR: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (it starts containerd and the kubelet)"
# One k8s-up.sh at a time on the machine (two CI runs starting the same cluster would race).
mkdir -p "$RUN"
exec 9>"$RUN/up.lock"
flock 9

# --- helpers -------------------------------------------------------------------
alive() {  # alive NAME: the process this script started as NAME is running
  local pid
  [ -f "$RUN/$1.pid" ] || return 1
  pid=$(cat "$RUN/$1.pid")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}
start() {  # start NAME CMD...: detached from this shell and from CI's, logs to $LOGS/NAME.log
  local name=$1; shift
  if alive "$name"; then step "$name already running (pid $(cat "$RUN/$name.pid"))"; return; fi
  step "starting $name (log $LOGS/$name.log)"
  setsid nohup "$@" >>"$LOGS/$name.log" 2>&1 </dev/null 9>&- &  # not holding the up.lock
  echo $! >"$RUN/$name.pid"
  disown || true
}
api() {  # api PATH: GET from the API server as the admin
  curl -fsS --max-time 5 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "$API$1"
}
node_ready() {  # node_ready [SINCE]: Ready, by a heartbeat at or after epoch SINCE (default 0)
  api "/api/v1/nodes/$NODE" 2>/dev/null | python3 -c '
import datetime, json, sys
since = float(sys.argv[1])
conds = json.load(sys.stdin).get("status", {}).get("conditions", [])
def fresh(c):
    t = datetime.datetime.fromisoformat(c["lastHeartbeatTime"].replace("Z", "+00:00"))
    return t.timestamp() >= since
ok = any(c["type"] == "Ready" and c["status"] == "True" and fresh(c) for c in conds)
sys.exit(0 if ok else 1)' "${1:-0}"
}
wait_for() {  # wait_for WHAT SECONDS LOGNAME CMD...
  local what=$1 secs=$2 log=$3; shift 3
  for _ in $(seq 1 "$secs"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  tail -n 30 "$LOGS/$log.log" >&2 || true
  die "$what not within $secs s (log $LOGS/$log.log)"
}

# --- 0. already up? ------------------------------------------------------------
all_alive() {
  local n
  for n in etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet; do
    alive "$n" || return 1
  done
}
if [ -f "$ADMIN_KUBECONFIG" ] && all_alive && node_ready; then
  step "cluster up: node $NODE Ready, kubeconfig $ADMIN_KUBECONFIG ($((SECONDS - T0)) s)"
  exit 0
fi

# --- 1. apt packages -------------------------------------------------------------
PKGS=(etcd-server containerd runc containernetworking-plugins iptables conntrack socat openssl
      gcc libc6-dev curl)
missing=()
for p in "${PKGS[@]}"; do
  [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  while pgrep -x apt-get >/dev/null || pgrep -x dpkg >/dev/null; do
    step "waiting for another apt-get/dpkg to finish"; sleep 5
  done
  step "apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    >/dev/null
fi
# Debian's etcd-server package enables a system etcd where systemd runs; ours is separate.
command -v etcd >/dev/null || die "etcd not found after installing etcd-server"
CNI_BIN=/usr/lib/cni
[ -x "$CNI_BIN/bridge" ] || die "no CNI bridge plugin in $CNI_BIN (containernetworking-plugins)"

# --- 2. the Kubernetes binaries, built from the Go module proxy, cached by version ---------
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
export GOFLAGS=-buildvcs=false
need=()
# Built outside kubernetes' own build scripts, a binary reports v0.0.0-master unless the
# linker sets the version (as hack/lib/version.sh does); one that does not is rebuilt (the
# compiled packages come from Go's build cache: only the link runs again).
minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
VERSION_LDFLAGS=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  VERSION_LDFLAGS+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  VERSION_LDFLAGS+=" -X $pkg.gitTreeState=clean"
done
for c in "${COMPONENTS[@]}"; do
  [ -x "$BIN/$c" ] && [ "$("$BIN/$c" --version 2>/dev/null)" = "Kubernetes $K8S_VERSION" ] ||
    need+=("$c")
done
BUILD_S=0
if [ ${#need[@]} -gt 0 ]; then
  [ -x "$GO" ] || die "Go is needed to build ${need[*]} $K8S_VERSION (not found)"
  TB=$SECONDS
  mkdir -p "$SRC" "$BIN"
  if ! grep -qs "^require k8s.io/kubernetes $K8S_VERSION\$" "$SRC/go.mod"; then
    step "generating $SRC/go.mod (k8s.io/kubernetes $K8S_VERSION, staging at $STAGING_VERSION)"
    (
      cd "$SRC"
      rm -f go.mod go.sum
      "$GO" mod init golive.local/k8sbuild >/dev/null 2>&1
      # The kubernetes module's go.mod replaces each k8s.io/* staging module with
      # ./staging/src/...; the module proxy serves them as k8s.io/<name> v0.x: pin every one.
      kmod=$("$GO" mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
      staging=$(sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\) => \./staging/.*#\1#p' "$kmod")
      [ -n "$staging" ] || die "no staging replace list in $kmod"
      args=()
      for m in $staging; do args+=("-replace=$m=$m@$STAGING_VERSION"); done
      "$GO" mod edit "${args[@]}" "-require=k8s.io/kubernetes@$K8S_VERSION"
      {
        echo '//go:build tools'
        echo
        echo 'package tools'
        echo
        echo 'import ('
        for c in "${COMPONENTS[@]}"; do echo "	_ \"k8s.io/kubernetes/cmd/$c\""; done
        echo ')'
      } >tools.go
      "$GO" mod tidy >/dev/null
    )
  fi
  for c in "${need[@]}"; do
    step "building $c $K8S_VERSION (cold: ~30 min for all four on 2 cores)"
    (cd "$SRC" && nice -n 10 "$GO" build -trimpath -ldflags="-s -w$VERSION_LDFLAGS" -o "$BIN/$c.tmp" \
      "k8s.io/kubernetes/cmd/$c") || die "go build $c failed"
    mv -f "$BIN/$c.tmp" "$BIN/$c"
  done
  BUILD_S=$((SECONDS - TB))
  step "built ${need[*]} in $BUILD_S s"
else
  step "binaries cached: $BIN (${COMPONENTS[*]})"
fi

# --- 3. the pause image, built locally --------------------------------------------
curl -fsS -o /dev/null "http://$REGISTRY/v2/" || die "registry $REGISTRY not answering (.ci/docker-up.sh)"
if ! curl -fs -o /dev/null "http://$REGISTRY/v2/pause/manifests/$PAUSE_TAG" \
      -H 'Accept: application/vnd.docker.distribution.manifest.v2+json'; then
  pause_c=$("$GO" env GOMODCACHE)/k8s.io/kubernetes@$K8S_VERSION/build/pause/linux/pause.c
  if [ ! -f "$pause_c" ]; then
    (cd "$SRC" 2>/dev/null || cd /tmp; "$GO" mod download "k8s.io/kubernetes@$K8S_VERSION")
  fi
  [ -f "$pause_c" ] || die "no $pause_c"
  step "building $PAUSE_IMAGE from $pause_c"
  tmp=$(mktemp -d)
  gcc -Os -static -Wall -Werror -DVERSION="$PAUSE_TAG-golive" -o "$tmp/pause" "$pause_c"
  strip "$tmp/pause"
  tar -C "$tmp" -cf "$tmp/rootfs.tar" pause
  docker import -c 'ENTRYPOINT ["/pause"]' -c 'USER 65535:65535' "$tmp/rootfs.tar" "$PAUSE_IMAGE" \
    >/dev/null
  docker push -q "$PAUSE_IMAGE" >/dev/null
  rm -rf "$tmp"
fi

# --- 4. certificates and kubeconfigs ----------------------------------------------
mkdir -p "$PKI" "$LOGS" "$RUN" "$STATE/etcd" "$STATE/kubelet" "$STATE/cni/net.d" \
  "$STATE/containerd/certs.d/$REGISTRY" "$RUN/containerd"
chmod 700 "$PKI" "$STATE/etcd"
cert() {  # cert NAME SUBJECT [SAN]: a key and a certificate signed by the cluster CA
  local name=$1 subj=$2 san=${3:-}
  [ -f "$PKI/$name.crt" ] && return
  openssl genrsa -out "$PKI/$name.key" 2048 2>/dev/null
  openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [ -n "$san" ]; then echo "extendedKeyUsage=serverAuth,clientAuth"; echo "subjectAltName=$san"
    else echo "extendedKeyUsage=clientAuth"; fi
  } >"$PKI/$name.ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 3650 -sha256 -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$PKI/$name.ext"
}
kubeconfig() {  # kubeconfig FILE CERTNAME
  [ -f "$1" ] && return
  cat >"$1" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: golive
  cluster:
    server: $API
    certificate-authority: $PKI/ca.crt
users:
- name: $2
  user:
    client-certificate: $PKI/$2.crt
    client-key: $PKI/$2.key
contexts:
- name: golive
  context: {cluster: golive, user: $2, namespace: default}
current-context: golive
YAML
  chmod 600 "$1"
}
if [ ! -f "$PKI/ca.crt" ]; then
  step "generating the cluster CA, certificates and service-account keys in $PKI"
  openssl genrsa -out "$PKI/ca.key" 2048 2>/dev/null
  openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=golive-k8s-ca" -days 3650 -sha256 \
    -out "$PKI/ca.crt" 2>/dev/null
fi
cert apiserver "/CN=kube-apiserver" \
  "IP:127.0.0.1,IP:10.96.0.1,IP:$NODE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
cert admin "/O=system:masters/CN=golive-admin"
cert controller-manager "/CN=system:kube-controller-manager"
cert scheduler "/CN=system:kube-scheduler"
cert kubelet "/O=system:nodes/CN=system:node:$NODE"
cert kubelet-serving "/CN=$NODE" "IP:$NODE_IP,IP:127.0.0.1,DNS:$NODE,DNS:localhost"
if [ ! -f "$PKI/sa.key" ]; then
  openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
  openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
fi
chmod 600 "$PKI"/*.key
kubeconfig "$ADMIN_KUBECONFIG" admin
kubeconfig "$STATE/controller-manager.kubeconfig" controller-manager
kubeconfig "$STATE/scheduler.kubeconfig" scheduler
kubeconfig "$STATE/kubelet.kubeconfig" kubelet

# --- 5. the node address: non-loopback, on lo, so it is reachable from this machine only ----
# (no `ip | grep -q` under pipefail: grep quitting early makes ip die of SIGPIPE)
case "$(ip -o addr show dev lo)" in *" $NODE_IP/"*) ;; *) ip addr add "$NODE_IP/32" dev lo ;; esac

# --- 6. control plane ----------------------------------------------------------------
TS=$SECONDS
start etcd etcd --name golive --data-dir "$STATE/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "golive=http://127.0.0.1:$ETCD_PEER_PORT" \
  --listen-metrics-urls "" --quota-backend-bytes 2147483648 --logger zap
wait_for "etcd" 30 etcd curl -fsS "http://127.0.0.1:$ETCD_PORT/health"

start kube-apiserver "$BIN/kube-apiserver" \
  --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
  --bind-address 127.0.0.1 --secure-port "$API_PORT" --advertise-address "$NODE_IP" \
  --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
  --client-ca-file "$PKI/ca.crt" \
  --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
  --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
  --kubelet-certificate-authority "$PKI/ca.crt" \
  --kubelet-preferred-address-types InternalIP \
  --service-account-key-file "$PKI/sa.pub" \
  --service-account-signing-key-file "$PKI/sa.key" \
  --service-account-issuer https://kubernetes.default.svc \
  --service-cluster-ip-range "$SERVICE_CIDR" \
  --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
  --allow-privileged=true --profiling=false --v=1
wait_for "kube-apiserver /readyz" 120 kube-apiserver api /readyz

start kube-controller-manager "$BIN/kube-controller-manager" \
  --kubeconfig "$STATE/controller-manager.kubeconfig" \
  --authentication-kubeconfig "$STATE/controller-manager.kubeconfig" \
  --authorization-kubeconfig "$STATE/controller-manager.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port 10257 --leader-elect=false \
  --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
  --use-service-account-credentials=true \
  --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
  --service-cluster-ip-range "$SERVICE_CIDR" --profiling=false --v=1
start kube-scheduler "$BIN/kube-scheduler" \
  --kubeconfig "$STATE/scheduler.kubeconfig" \
  --authentication-kubeconfig "$STATE/scheduler.kubeconfig" \
  --authorization-kubeconfig "$STATE/scheduler.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port 10259 --leader-elect=false --profiling=false --v=1

# --- 7. the node: its own containerd (not Docker's), CNI, the kubelet -----------------
cat >"$STATE/containerd/config.toml" <<TOML
version = 2
root = "$STATE/containerd/root"
state = "$RUN/containerd/state"
disabled_plugins = []
[grpc]
  address = "$CTRD_SOCK"
[ttrpc]
  address = "$CTRD_SOCK.ttrpc"
[debug]
  address = "$CTRD_SOCK.debug"
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  enable_unprivileged_ports = true
  # This machine's root lacks CAP_SYS_RESOURCE, so no process may lower its oom_score_adj
  # (the sandbox's default -998 fails: "nsexec: failed to update /proc/self/oom_score_adj:
  # Permission denied"); clamp every adjustment to containerd's own, as in rootless setups.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$RUN/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN"
    conf_dir = "$STATE/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$STATE/containerd/certs.d"
TOML
cat >"$STATE/containerd/certs.d/$REGISTRY/hosts.toml" <<TOML
server = "http://$REGISTRY"
[host."http://$REGISTRY"]
  capabilities = ["pull", "resolve"]
TOML
cat >"$STATE/cni/net.d/10-golive.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "golive-k8s",
  "plugins": [
    {"type": "bridge", "bridge": "$CNI_BRIDGE", "isGateway": true, "ipMasq": true,
     "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]],
              "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$STATE/cni/ipam"}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
# A socket a killed containerd left behind would pass the wait below at once (the kubelet then
# starts against nothing and exits): remove it when this run starts containerd.
alive containerd || rm -f "$CTRD_SOCK"
start containerd containerd --config "$STATE/containerd/config.toml"
wait_for "containerd" 30 containerd test -S "$CTRD_SOCK"

cat >"$STATE/kubelet/config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
containerRuntimeEndpoint: unix://$CTRD_SOCK
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
resolvConf: /etc/resolv.conf
serializeImagePulls: false
podPidsLimit: 4096
maxPods: 110
evictionHard: {memory.available: "200Mi", nodefs.available: "2%", imagefs.available: "2%"}
imageGCHighThresholdPercent: 98
imageGCLowThresholdPercent: 95
YAML
KUBELET_T0=$(( $(date +%s) - 1 ))
if alive kubelet; then KUBELET_T0=0; fi
start kubelet "$BIN/kubelet" --config "$STATE/kubelet/config.yaml" \
  --kubeconfig "$STATE/kubelet.kubeconfig" --root-dir "$STATE/kubelet" \
  --hostname-override "$NODE" --node-ip "$NODE_IP" --v=1
# a Ready condition left in etcd by an earlier kubelet does not count: a heartbeat from this one
wait_for "node $NODE Ready" 180 kubelet node_ready "$KUBELET_T0"
START_S=$((SECONDS - TS))
step "cluster up: node $NODE Ready; kubeconfig $ADMIN_KUBECONFIG; logs $LOGS"
step "timing: build $BUILD_S s (0 = cached), start $START_S s, total $((SECONDS - T0)) s"
