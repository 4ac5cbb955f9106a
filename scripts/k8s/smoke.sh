#!/usr/bin/env bash
# Smoke test of the binaries scripts/k8s-build-current.sh builds: etcd, kube-apiserver
# and kube-controller-manager with scripts/cluster.sh's flags minus those the current
# release removed (see README.md), plus kube-scheduler; all on 127.0.0.1, all TLS, in a
# temp dir that is removed at the end. Checks: etcd /health, apiserver /readyz and that
# `kubectl version` shows the built version, the controller manager creating
# default/default, the scheduler's /healthz and it marking a pod Unschedulable (there are
# no nodes), an audit log being written. Stops exactly the processes it started (by pid).
#
# Usage: scripts/k8s/smoke.sh [BIN_DIR]   (default: what k8s-build-current.sh prints)
# Ports (127.0.0.1, must be free): SMOKE_ETCD_PORT (25379; peer: the next one),
# SMOKE_API_PORT (28443), SMOKE_SCHED_PORT (28259).
# SMOKE_KEEP=1 keeps the temp dir (logs, pki) and prints its path.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN=${1:-$(bash "$SCRIPT_DIR/../k8s-build-current.sh" | tail -n1)}
ETCD_PORT=${SMOKE_ETCD_PORT:-25379}
ETCD_PEER_PORT=$((ETCD_PORT + 1))
API_PORT=${SMOKE_API_PORT:-28443}
SCHED_PORT=${SMOKE_SCHED_PORT:-28259}
API=https://127.0.0.1:$API_PORT

log() { echo "smoke: $*" >&2; }

for b in etcd kube-apiserver kube-controller-manager kube-scheduler; do
  [ -x "$BIN/$b" ] || { log "error: $BIN/$b missing"; exit 1; }
done
command -v kubectl >/dev/null || { log "error: kubectl not on PATH"; exit 1; }
for p in "$ETCD_PORT" "$ETCD_PEER_PORT" "$API_PORT" "$SCHED_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then log "error: port $p is in use"; exit 1; fi
done

T=$(mktemp -d "${TMPDIR:-/tmp}/sts-safe-smoke.XXXXXX")
PIDS=()
cleanup() {
  local rc=$? pid i
  # clients first, etcd last
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    pid=${PIDS[i]}
    kill -TERM "$pid" 2>/dev/null || continue
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ "$rc" != 0 ]; then
    for f in "$T"/*.log; do
      case $f in */pki.log | */audit.log) continue ;; esac
      [ -f "$f" ] && { echo "---- tail of $f" >&2; tail -n 15 "$f" >&2; }
    done
  fi
  if [ "${SMOKE_KEEP:-0}" = 1 ]; then log "kept $T"; else rm -rf "$T"; fi
  [ "$rc" = 0 ] && log "PASS" || log "FAIL"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME ARGS...: runs $BIN/NAME in the background, log in $T/NAME.log
start() {
  local name=$1
  shift
  "$BIN/$name" "$@" </dev/null >"$T/$name.log" 2>&1 &
  PIDS+=($!)
  eval "PID_${name//-/_}=$!"
}

# wait_for WHAT PID CHECK...: up to 60 s while PID lives
wait_for() {
  local what=$1 pid=$2 i
  shift 2
  for ((i = 0; i < 600; i++)); do
    "$@" && { log "$what: ok ($((i / 10)).$((i % 10))s)"; return 0; }
    kill -0 "$pid" 2>/dev/null || { log "error: process $pid exited while waiting for $what"; return 1; }
    sleep 0.1
  done
  log "error: $what: timeout"
  return 1
}

# ---- PKI as scripts/cluster.sh makes it: CA, etcd and apiserver serving certs, client
# certs for the apiserver (to etcd) and the admin, service-account key pair
(
  cd "$T"
  umask 077
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out ca.key
  openssl req -x509 -new -key ca.key -subj /CN=smoke-ca -days 1 -sha256 \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,digitalSignature -out ca.crt
  sign() { # NAME SUBJECT EKU [SAN]
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1.key"
    openssl req -new -key "$1.key" -subj "$2" -out "$1.csr"
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -set_serial "0x$(openssl rand -hex 16)" \
      -days 1 -sha256 -out "$1.crt" -extfile <(printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=%s\n%s' "$3" "${4:+subjectAltName=$4}")
  }
  sign apiserver /CN=kube-apiserver serverAuth \
    DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.96.0.1
  sign etcd /CN=smoke-etcd serverAuth,clientAuth DNS:localhost,IP:127.0.0.1
  sign apiserver-etcd-client /CN=kube-apiserver-etcd-client clientAuth
  sign admin /O=system:masters/CN=smoke-admin clientAuth
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key
  openssl pkey -in sa.key -pubout -out sa.pub
) 2>"$T/pki.log"
cat >"$T/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: smoke
  cluster: {server: "$API", certificate-authority: "$T/ca.crt"}
users:
- name: admin
  user: {client-certificate: "$T/admin.crt", client-key: "$T/admin.key"}
contexts:
- name: smoke
  context: {cluster: smoke, user: admin, namespace: default}
current-context: smoke
EOF
export KUBECONFIG=$T/kubeconfig
k() { kubectl --request-timeout=5s "$@"; }

# ---- etcd: scripts/cluster.sh's command line
mkdir -m 700 "$T/etcd"
start etcd --name=smoke --data-dir="$T/etcd" \
  --listen-client-urls="https://127.0.0.1:$ETCD_PORT" --advertise-client-urls="https://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls="https://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls="https://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster="smoke=https://127.0.0.1:$ETCD_PEER_PORT" --initial-cluster-state=new --initial-cluster-token=smoke \
  --cert-file="$T/etcd.crt" --key-file="$T/etcd.key" --trusted-ca-file="$T/ca.crt" --client-cert-auth \
  --peer-cert-file="$T/etcd.crt" --peer-key-file="$T/etcd.key" --peer-trusted-ca-file="$T/ca.crt" --peer-client-cert-auth \
  --logger=zap --log-outputs=stderr --log-level=warn
etcd_ok() {
  curl -s --max-time 1 --cacert "$T/ca.crt" --cert "$T/apiserver-etcd-client.crt" --key "$T/apiserver-etcd-client.key" \
    "https://127.0.0.1:$ETCD_PORT/health" | grep -q '"health":"true"'
}
wait_for "etcd /health" "$PID_etcd" etcd_ok
"$BIN/etcd" --version | head -n1 >&2

# ---- kube-apiserver: scripts/cluster.sh's command line minus --insecure-port=0 (removed
# in 1.24). cluster.sh advertises the machine's first IPv4 address; here it is 127.0.0.1,
# which the endpoint reconciler of the kubernetes service refuses at startup ("may not be
# in the loopback range"), hence --endpoint-reconciler-type=none (not needed by cluster.sh).
start kube-apiserver \
  --bind-address=127.0.0.1 --secure-port="$API_PORT" \
  --advertise-address=127.0.0.1 --endpoint-reconciler-type=none \
  --etcd-servers="https://127.0.0.1:$ETCD_PORT" --etcd-cafile="$T/ca.crt" \
  --etcd-certfile="$T/apiserver-etcd-client.crt" --etcd-keyfile="$T/apiserver-etcd-client.key" \
  --client-ca-file="$T/ca.crt" --tls-cert-file="$T/apiserver.crt" --tls-private-key-file="$T/apiserver.key" \
  --authorization-mode=Node,RBAC \
  --service-account-key-file="$T/sa.pub" --service-account-signing-key-file="$T/sa.key" \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --api-audiences=https://kubernetes.default.svc.cluster.local \
  --service-cluster-ip-range=10.96.0.0/16 \
  --disable-admission-plugins=ServiceAccount \
  --enable-priority-and-fairness=false \
  --allow-privileged=true --profiling=false \
  --audit-policy-file="$SCRIPT_DIR/../audit-policy.yaml" --audit-log-path="$T/audit.log" \
  --audit-log-format=json --audit-log-maxsize=200 --audit-log-maxbackup=1
api_ready() { [ "$(k get --raw /readyz 2>/dev/null)" = ok ]; }
wait_for "kube-apiserver /readyz" "$PID_kube_apiserver" api_ready
k version >&2
k get --raw '/readyz?verbose' | tail -n 3 >&2
server=$(k version -o json | sed -n '/serverVersion/,/}/s/.*"gitVersion": "\([^"]*\)".*/\1/p')
[ "$server" = "$(sed -n 's/^kubernetes=\([^ ]*\).*/\1/p' "$BIN/VERSIONS")" ] ||
  { log "error: server gitVersion '$server' is not the built version"; exit 1; }

# ---- kube-controller-manager: scripts/cluster.sh's command line minus --port=0 (removed
# in 1.24; --secure-port=0 alone: no listener at all). kube-scheduler (not in cluster.sh,
# sim-kubelet schedules there): /healthz on 127.0.0.1 only.
start kube-controller-manager --kubeconfig="$T/kubeconfig" \
  --controllers='*' --leader-elect=false \
  --service-account-private-key-file="$T/sa.key" --root-ca-file="$T/ca.crt" \
  --cluster-signing-cert-file="$T/ca.crt" --cluster-signing-key-file="$T/ca.key" \
  --use-service-account-credentials=false \
  --secure-port=0 --profiling=false \
  --kube-api-qps=100 --kube-api-burst=200
start kube-scheduler --kubeconfig="$T/kubeconfig" --leader-elect=false \
  --bind-address=127.0.0.1 --secure-port="$SCHED_PORT" --profiling=false
healthz() { [ "$(curl -sk --max-time 1 "https://127.0.0.1:$1/healthz")" = ok ]; }
wait_for "kube-scheduler /healthz" "$PID_kube_scheduler" healthz "$SCHED_PORT"
default_sa() { k get serviceaccount default -o name >/dev/null 2>&1; }
wait_for "controller manager created default/default" "$PID_kube_controller_manager" default_sa

k apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: smoke}
spec:
  containers: [{name: c, image: registry.invalid/none}]
EOF
unschedulable() {
  [ "$(k get pod smoke -o jsonpath='{.status.conditions[?(@.type=="PodScheduled")].reason}' 2>/dev/null)" = Unschedulable ]
}
wait_for "scheduler marked pod smoke Unschedulable (no nodes)" "$PID_kube_scheduler" unschedulable
k get pod smoke -o jsonpath='{.status.conditions[0].message}{"\n"}' >&2
audited() { grep -q '"verb":"create"' "$T/audit.log" 2>/dev/null; }
wait_for "audit log has the pod's create" "$PID_kube_apiserver" audited
