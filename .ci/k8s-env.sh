# Shared settings of .ci/k8s-up.sh and .ci/k8s-down.sh (sourced; every value overridable by env).
# The admin kubeconfig is $ADMIN_KUBECONFIG (/var/lib/golive-k8s/admin.kubeconfig by default).
K8S_VERSION="${GOLIVE_K8S_VERSION:-v1.34.4}"
STAGING_VERSION="v0.${K8S_VERSION#v1.}"           # k8s.io/api etc. at the matching release
CACHE="${GOLIVE_K8S_CACHE:-/var/cache/golive-k8s}"
BIN="$CACHE/bin-$K8S_VERSION"
SRC="$CACHE/src-$K8S_VERSION"
STATE="${GOLIVE_K8S_STATE:-/var/lib/golive-k8s}"
LOGS="${GOLIVE_K8S_LOGS:-/var/log/golive-k8s}"
RUN="${GOLIVE_K8S_RUN:-/run/golive-k8s}"
API_PORT="${GOLIVE_K8S_API_PORT:-6443}"
ETCD_PORT="${GOLIVE_K8S_ETCD_PORT:-2379}"
ETCD_PEER_PORT=$((ETCD_PORT + 1))
NODE_IP="${GOLIVE_K8S_NODE_IP:-10.213.0.1}"
POD_CIDR="${GOLIVE_K8S_POD_CIDR:-10.88.0.0/16}"
SERVICE_CIDR=10.96.0.0/16
NODE="${GOLIVE_K8S_NODE:-golive-node}"
REGISTRY="${GOLIVE_REGISTRY:-127.0.0.1:5000}"
PAUSE_TAG=3.10
PAUSE_IMAGE="$REGISTRY/pause:$PAUSE_TAG"
COMPONENTS=(kube-apiserver kube-controller-manager kube-scheduler kubelet)
PKI="$STATE/pki"
CTRD_SOCK="$RUN/containerd/containerd.sock"
ADMIN_KUBECONFIG="$STATE/admin.kubeconfig"
API="https://127.0.0.1:$API_PORT"
CNI_BRIDGE=golive-cni0                             # the pods' bridge (CNI bridge plugin)
