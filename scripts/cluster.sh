#!/usr/bin/env bash
# Local Kubernetes cluster for sts-safe's integration tests and benchmarks, in one of two
# versions (K8S_VERSION):
#   v1.20.2  the compatibility floor: Debian's etcd, kube-apiserver and
#            kube-controller-manager built from Debian's source (k8s-build.sh), and
#            sim-kubelet as node, scheduler and storage provisioner (1 node)
#   v1.37.2  current: etcd, kube-apiserver, kube-controller-manager and the real
#            kube-scheduler built from their Go modules (k8s-build-current.sh), and
#            sim-kubelet as the kubelet of 3 nodes and storage provisioner
# Everything listens on 127.0.0.1 only and talks TLS with a CA generated here. Each
# version has its own state directory and ports, so both can run side by side.
#
# Usage: scripts/cluster.sh up|down|status|env|restart-apiserver|prometheus-stop|prometheus-start
#   up      start the cluster (does nothing if it already runs); the last line on stdout
#           is `export KUBECONFIG=... STS_SAFE_PROMETHEUS=http://127.0.0.1:PORT` (the
#           second variable only when Prometheus is part of the cluster, i.e. not with
#           STS_SAFE_NO_SIM=1), progress goes to stderr
#   down    stop exactly the processes `up` started (pid files, verified through
#           /proc/PID/cmdline); idempotent; logs are kept
#   status  show which components run; exit 0 if all are up, 1 otherwise
#   env     print the export line
#   prometheus-stop
#           stop the Prometheus `up` started (pid file, verified through /proc/PID/cmdline);
#           its data stay (tests of a metrics pipeline that goes away mid-run)
#   prometheus-start
#           start it again with the same configuration and data and wait for /-/ready;
#           does nothing if it runs. The previous log is kept as prometheus.log.1.
#   restart-apiserver [SECONDS_DOWN]
#           stop the kube-apiserver `up` started (pid file, verified through
#           /proc/PID/cmdline) and start it again with exactly the same command line,
#           then wait for /readyz; etcd, controller manager and simulator keep running
#           (fault-injection tests); with SECONDS_DOWN, it stays stopped that long first.
#           The previous log is kept as kube-apiserver.log.1.
#           With the real scheduler (v1.37.2), kube-scheduler and kube-controller-manager
#           are restarted the same way afterwards: their pod informers can stall for
#           minutes after an API server restart
#
# Environment:
#   K8S_VERSION              v1.37.2 (default; also "current") or v1.20.2 (also "1.20")
#   STS_SAFE_CLUSTER_DIR     state dir (default ~/.cache/sts-safe/cluster for v1.20.2,
#                            ~/.cache/sts-safe/cluster-v1.37.2 for v1.37.2): pki/ (reused
#                            while valid), etcd/ (fresh on every up), logs/, run/, kubeconfig
#   STS_SAFE_NO_SIM=1        control plane only: neither build nor start sim-kubelet (nor
#                            Prometheus)
#   STS_SAFE_SIM_ARGS        extra sim-kubelet arguments, e.g. "--ready-delay 1s"
#   STS_SAFE_APISERVER_ARGS  extra kube-apiserver arguments
#   STS_SAFE_CONTROLLER_MANAGER_ARGS  extra kube-controller-manager arguments
#   STS_SAFE_ADVERTISE_ADDRESS  apiserver advertise address (default: first non-loopback
#                            IPv4 address of this machine)
#   STS_SAFE_PROMETHEUS_PORT Prometheus' port (default 27090 for v1.20.2, 29090 for v1.37.2)
#   STS_SAFE_SIM_METRICS_PORT  sim-kubelet's --metrics-listen port (default 27100 / 29100)
#
# Prometheus (Debian's package, /usr/bin/prometheus; `up` installs it with apt-get when it
# is missing, keeping the package's own service from starting): started after
# sim-kubelet with a generated configuration in $STATE/prometheus/prometheus.yml, global
# scrape and evaluation interval 1s, scrape timeout 1s; job `sim-pods` reads the file_sd
# file sim-kubelet keeps ($STATE/prometheus/targets/sim-pods.json, one target per running
# pod with metrics, labels namespace, pod, statefulset), job `prometheus` scrapes itself.
# Its TSDB ($STATE/prometheus/data, retention 2h) is fresh on every `up` and kept across
# prometheus-stop/prometheus-start. See sim-kubelet/README.md, "Metrics exporter".
#
# Node lifecycle (both versions, for tests that lose a node): kube-controller-manager
# --node-monitor-grace-period=16s --node-monitor-period=2s (a node without heartbeat is
# Ready=Unknown and tainted node.kubernetes.io/unreachable after ~16-20 s), kube-apiserver
# --default-not-ready-toleration-seconds=2 --default-unreachable-toleration-seconds=2 (its
# pods are evicted 2 s later). sim-kubelet renews Leases every 2 s and posts node status
# every 10 s, so live nodes never miss the grace period.
#
# Ports (127.0.0.1), v1.20.2 / v1.37.2: etcd client 23379 / 25379 (STS_SAFE_ETCD_PORT),
# etcd peer the next one, kube-apiserver 26443 / 28443 (STS_SAFE_API_PORT),
# kube-scheduler (v1.37.2 only) 28259, the API port - 184; Prometheus 27090 / 29090,
# sim-kubelet's metrics 27100 / 29100; another cluster of the same version needs its own
# ports and STS_SAFE_CLUSTER_DIR.
# Kubeconfig contexts: sts-safe-admin (current; CN=sts-safe-admin, O=system:masters) and
# sts-safe-limited (CN=sts-safe-limited, O=sts-safe:limited, no RoleBindings).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
case ${K8S_VERSION:-v1.37.2} in
  v1.20.2 | 1.20)
    K8S_VERSION=v1.20.2
    BUILD_SCRIPT=k8s-build.sh
    DEFAULT_STATE=$HOME/.cache/sts-safe/cluster
    DEFAULT_ETCD_PORT=23379 DEFAULT_API_PORT=26443
    DEFAULT_PROMETHEUS_PORT=27090 DEFAULT_SIM_METRICS_PORT=27100
    REAL_SCHEDULER=0 SIM_NODES=1
    ;;
  v1.37.2 | 1.37 | current)
    K8S_VERSION=v1.37.2
    BUILD_SCRIPT=k8s-build-current.sh
    DEFAULT_STATE=$HOME/.cache/sts-safe/cluster-v1.37.2
    DEFAULT_ETCD_PORT=25379 DEFAULT_API_PORT=28443
    DEFAULT_PROMETHEUS_PORT=29090 DEFAULT_SIM_METRICS_PORT=29100
    REAL_SCHEDULER=1 SIM_NODES=3
    ;;
  *)
    echo "cluster: error: K8S_VERSION=$K8S_VERSION: use v1.20.2 or v1.37.2 (current)" >&2
    exit 2
    ;;
esac
STATE=${STS_SAFE_CLUSTER_DIR:-$DEFAULT_STATE}
mkdir -p "$STATE"
STATE=$(cd "$STATE" && pwd)
PKI=$STATE/pki
RUN=$STATE/run
LOGS=$STATE/logs
KUBECONFIG_OUT=$STATE/kubeconfig
CM_KUBECONFIG=$STATE/controller-manager.kubeconfig
SCHED_KUBECONFIG=$STATE/scheduler.kubeconfig
PROM_DIR=$STATE/prometheus
PROM_CONFIG=$PROM_DIR/prometheus.yml
PROM_SD_FILE=$PROM_DIR/targets/sim-pods.json
PROM_BIN=/usr/bin/prometheus

ETCD_CLIENT_PORT=${STS_SAFE_ETCD_PORT:-$DEFAULT_ETCD_PORT}
ETCD_PEER_PORT=$((ETCD_CLIENT_PORT + 1))
API_PORT=${STS_SAFE_API_PORT:-$DEFAULT_API_PORT}
SCHED_PORT=$((API_PORT - 184)) # 28259 for 28443: kube-scheduler's /healthz
PROM_PORT=${STS_SAFE_PROMETHEUS_PORT:-$DEFAULT_PROMETHEUS_PORT}
SIM_METRICS_PORT=${STS_SAFE_SIM_METRICS_PORT:-$DEFAULT_SIM_METRICS_PORT}
PROM_URL=http://127.0.0.1:$PROM_PORT
API_SERVER=https://127.0.0.1:$API_PORT
SERVICE_CIDR=10.96.0.0/16
SERVICE_IP=10.96.0.1
SA_ISSUER=https://kubernetes.default.svc.cluster.local
READY_TIMEOUT=60 # seconds, per wait

CONTROL_PLANE=(etcd kube-apiserver kube-controller-manager)
[ "$REAL_SCHEDULER" = 0 ] || CONTROL_PLANE+=(kube-scheduler)
ALL_COMPONENTS=("${CONTROL_PLANE[@]}" sim-kubelet prometheus)

log() { echo "cluster: $*" >&2; }
die() { echo "cluster: error: $*" >&2; exit 1; }

# die_log COMPONENT MESSAGE: fail showing the tail of the component's log.
die_log() {
  local f=$LOGS/$1.log
  echo "cluster: error: $2" >&2
  if [ -s "$f" ]; then
    echo "---- last lines of $f ----" >&2
    tail -n 40 "$f" >&2
    echo "----" >&2
  else
    echo "cluster: ($f is empty)" >&2
  fi
  exit 1
}

now_ms() { local t=${EPOCHREALTIME/[.,]/}; echo $((t / 1000)); }

# One line, so that `eval "$(cluster.sh env)"` and the Makefile's `eval "$line"` set both.
export_line() {
  if expected_components | grep -qx prometheus; then
    printf 'export KUBECONFIG=%q STS_SAFE_PROMETHEUS=%q\n' "$KUBECONFIG_OUT" "$PROM_URL"
  else
    printf 'export KUBECONFIG=%q\n' "$KUBECONFIG_OUT"
  fi
}

# An argument that only this state dir's instance of the component has on its command line.
marker() {
  case $1 in
    etcd) echo "--data-dir=$STATE/etcd" ;;
    kube-apiserver) echo "--tls-cert-file=$PKI/apiserver.crt" ;;
    kube-controller-manager) echo "--kubeconfig=$CM_KUBECONFIG" ;;
    kube-scheduler) echo "--kubeconfig=$SCHED_KUBECONFIG" ;;
    sim-kubelet) echo "$KUBECONFIG_OUT" ;;
    prometheus) echo "--config.file=$PROM_CONFIG" ;;
  esac
}

# Prints the pid of component $1 and succeeds only if its pid file names a live process
# that is that component of this state dir: argv[0]'s basename is the component's binary
# and one argument is the state-specific marker. Never looks processes up by name.
running_pid() {
  local name=$1 pid arg m
  local -a args=()
  [ -f "$RUN/$name.pid" ] || return 1
  pid=$(<"$RUN/$name.pid")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  mapfile -d '' args 2>/dev/null <"/proc/$pid/cmdline" || return 1
  [ "${#args[@]}" -gt 0 ] || return 1 # zombie or kernel thread
  [ "$(basename -- "${args[0]}")" = "$name" ] || return 1
  m=$(marker "$name")
  for arg in "${args[@]:1}"; do
    if [ "$arg" = "$m" ]; then
      echo "$pid"
      return 0
    fi
  done
  return 1
}

is_running() { running_pid "$1" >/dev/null; }

# Stops the given components (TERM, up to ~5 s, then KILL) and removes their pid files.
stop_components() {
  local name pid i alive
  for name in "$@"; do
    if pid=$(running_pid "$name"); then
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  for ((i = 0; i < 50; i++)); do
    alive=0
    for name in "$@"; do is_running "$name" && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for name in "$@"; do
    if pid=$(running_pid "$name"); then
      log "$name (pid $pid) did not stop on TERM; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  for ((i = 0; i < 20; i++)); do
    alive=0
    for name in "$@"; do is_running "$name" && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for name in "$@"; do rm -f "$RUN/$name.pid"; done
}

# Stops those of the given components that run, clients before servers (the apiserver
# takes long to shut down once etcd is gone): simulator and controller manager, then the
# apiserver, then etcd.
stop_in_order() {
  local stage name want
  local -a now
  for stage in prometheus "sim-kubelet kube-controller-manager kube-scheduler" kube-apiserver etcd; do
    now=()
    for name in $stage; do
      for want in "$@"; do [ "$want" = "$name" ] && is_running "$name" && now+=("$name"); done
    done
    [ "${#now[@]}" = 0 ] || stop_components "${now[@]}"
  done
  for name in "$@"; do rm -f "$RUN/$name.pid"; done
}

sim_wanted() { [ "${STS_SAFE_NO_SIM:-0}" != 1 ]; }

# Components the last `up` started (all of them unless it ran with STS_SAFE_NO_SIM=1).
expected_components() {
  if [ -f "$RUN/components" ]; then
    cat "$RUN/components"
  else
    printf '%s\n' "${ALL_COMPONENTS[@]}"
  fi
}

# ---------------------------------------------------------------------------- PKI

advertise_address() {
  local a=${STS_SAFE_ADVERTISE_ADDRESS:-}
  if [ -z "$a" ]; then
    a=$({ hostname -I 2>/dev/null || true; } | tr ' ' '\n' |
      grep -E '^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$' | grep -v '^127\.' | head -n1 || true)
  fi
  if [ -z "$a" ] && command -v ip >/dev/null; then
    a=$(ip -4 -o addr show scope global 2>/dev/null | awk '{sub(/\/.*/, "", $4); print $4; exit}' || true)
  fi
  [ -n "$a" ] || die "no non-loopback IPv4 address found for --advertise-address (set STS_SAFE_ADVERTISE_ADDRESS)"
  echo "$a"
}

LEAF_CERTS=(apiserver etcd apiserver-etcd-client admin limited)

# sign DIR NAME SUBJECT EXTENDED_KEY_USAGE [SUBJECT_ALT_NAMES]
sign() {
  local dir=$1 name=$2 subj=$3 eku=$4 san=${5:-}
  local ext="basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=$eku"
  [ -z "$san" ] || ext+=$'\n'"subjectAltName=$san"
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$dir/$name.key"
  openssl req -new -key "$dir/$name.key" -subj "$subj" -out "$dir/$name.csr"
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days 3650 -sha256 \
    -extfile <(printf '%s\n' "$ext") -out "$dir/$name.crt"
  rm -f "$dir/$name.csr"
}

# Reuses $PKI if every certificate is present, chains to the CA, is valid now and for
# another day, and the apiserver certificate has the current SANs; else regenerates all.
ensure_pki() {
  local adv=$1 san c ok=1
  san="DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
  san+=",DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:$SERVICE_IP,IP:$adv"
  if [ -f "$PKI/ca.crt" ] && [ -f "$PKI/ca.key" ] && [ -f "$PKI/sa.key" ] && [ -f "$PKI/sa.pub" ] &&
    [ "$(cat "$PKI/apiserver.san" 2>/dev/null)" = "$san" ]; then
    for c in ca "${LEAF_CERTS[@]}"; do
      if ! [ -f "$PKI/$c.key" ] || ! openssl x509 -checkend 86400 -noout -in "$PKI/$c.crt" >/dev/null 2>&1; then
        ok=0
        break
      fi
    done
    if [ "$ok" = 1 ]; then
      local -a leafs=()
      for c in "${LEAF_CERTS[@]}"; do leafs+=("$PKI/$c.crt"); done
      openssl verify -CAfile "$PKI/ca.crt" "${leafs[@]}" >/dev/null 2>&1 || ok=0
    fi
    [ "$ok" = 1 ] && return 0
  fi
  log "generating CA and certificates in $PKI"
  local tmp=$PKI.tmp
  rm -rf "$tmp"
  mkdir -p "$tmp"
  chmod 700 "$tmp"
  # set -e is ignored inside a subshell whose status is tested, hence the set +e dance.
  local rc
  set +e
  (
    set -e
    umask 077
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$tmp/ca.key"
    openssl req -x509 -new -key "$tmp/ca.key" -subj "/CN=sts-safe-ca" -days 3650 -sha256 \
      -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" -out "$tmp/ca.crt"
    sign "$tmp" apiserver "/CN=kube-apiserver" serverAuth "$san"
    sign "$tmp" etcd "/CN=sts-safe-etcd" serverAuth,clientAuth "DNS:localhost,IP:127.0.0.1"
    sign "$tmp" apiserver-etcd-client "/CN=kube-apiserver-etcd-client" clientAuth
    sign "$tmp" admin "/O=system:masters/CN=sts-safe-admin" clientAuth
    sign "$tmp" limited "/O=sts-safe:limited/CN=sts-safe-limited" clientAuth
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$tmp/sa.key"
    openssl pkey -in "$tmp/sa.key" -pubout -out "$tmp/sa.pub"
    echo "$san" >"$tmp/apiserver.san"
  ) 2>"$tmp.log"
  rc=$?
  set -e
  if [ "$rc" != 0 ]; then
    tail -n 20 "$tmp.log" >&2
    die "certificate generation failed"
  fi
  rm -f "$tmp.log"
  rm -rf "$PKI"
  mv "$tmp" "$PKI"
}

# write_kubeconfig PATH USER... (the first user's context is the current one)
write_kubeconfig() {
  local path=$1 u
  shift
  local tmp=$path.tmp.$$
  (
    umask 077
    {
      echo "apiVersion: v1"
      echo "kind: Config"
      echo "clusters:"
      echo "- name: sts-safe-local"
      echo "  cluster:"
      echo "    server: $API_SERVER"
      echo "    certificate-authority-data: $(base64 -w0 <"$PKI/ca.crt")"
      echo "users:"
      for u in "$@"; do
        echo "- name: sts-safe-$u"
        echo "  user:"
        echo "    client-certificate-data: $(base64 -w0 <"$PKI/$u.crt")"
        echo "    client-key-data: $(base64 -w0 <"$PKI/$u.key")"
      done
      echo "contexts:"
      for u in "$@"; do
        echo "- name: sts-safe-$u"
        echo "  context:"
        echo "    cluster: sts-safe-local"
        echo "    user: sts-safe-$u"
        echo "    namespace: default"
      done
      echo "current-context: sts-safe-$1"
      echo "preferences: {}"
    } >"$tmp"
  )
  chmod 600 "$tmp"
  mv -f "$tmp" "$path"
}

# ---------------------------------------------------------------------------- processes

# launch NAME COMMAND...: start a daemon in its own session (so that signals sent to the
# caller's process group don't reach it), detached from our stdin/stdout and lock fd.
launch() {
  local name=$1 i
  shift
  setsid "$@" </dev/null >"$LOGS/$name.log" 2>&1 9>&- &
  echo "$!" >"$RUN/$name.pid"
  STARTED+=("$name")
  # Wait (briefly) for the exec so that the pid file check sees the real binary.
  for ((i = 0; i < 50; i++)); do
    is_running "$name" && return 0
    kill -0 "$(<"$RUN/$name.pid")" 2>/dev/null || break
    sleep 0.02
  done
  is_running "$name" || die_log "$name" "$name exited right after start"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

curl_admin() {
  curl -s --max-time 2 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" "$@"
}

api_status() { curl_admin -o /dev/null -w '%{http_code}' "$API_SERVER$1" 2>/dev/null || true; }

# wait_until NAME DESCRIPTION CHECK...: polls CHECK every 0.1 s while NAME stays alive.
wait_until() {
  local name=$1 what=$2 deadline
  shift 2
  deadline=$(($(now_ms) + READY_TIMEOUT * 1000))
  until "$@"; do
    is_running "$name" || die_log "$name" "$name exited while waiting for $what"
    [ "$(now_ms)" -lt "$deadline" ] || die_log "$name" "$what not reached within ${READY_TIMEOUT}s"
    sleep 0.1
  done
}

etcd_healthy() {
  curl -s --max-time 1 --cacert "$PKI/ca.crt" --cert "$PKI/apiserver-etcd-client.crt" \
    --key "$PKI/apiserver-etcd-client.key" "https://127.0.0.1:$ETCD_CLIENT_PORT/health" 2>/dev/null |
    grep -q '"health":"true"'
}
apiserver_ready() { [ "$(api_status /readyz)" = 200 ]; }
scheduler_healthy() {
  [ "$(curl -sk --max-time 1 -o /dev/null -w '%{http_code}' "https://127.0.0.1:$SCHED_PORT/healthz" 2>/dev/null)" = 200 ]
}
# The serviceaccount controller creating default/default shows the controllers are syncing.
# A restarted kube-controller-manager (no health port here: --secure-port=0) has built its
# controllers once the node lifecycle controller logged its start.
controller_manager_started() {
  grep -q 'Controller will reconcile labels' "$LOGS/kube-controller-manager.log" 2>/dev/null
}
controllers_working() {
  [ "$(api_status /api/v1/namespaces/default/serviceaccounts/default)" = 200 ]
}
sim_ready() {
  grep -q 'sim-kubelet ready' "$LOGS/sim-kubelet.log" 2>/dev/null ||
    [ "$(api_status /apis/storage.k8s.io/v1/storageclasses/sim-standard)" = 200 ]
}

sim_bin() {
  local target=${CARGO_TARGET_DIR:-target}
  case $target in /*) ;; *) target=$REPO_ROOT/$target ;; esac
  echo "$target/debug/sim-kubelet"
}

start_sim_build() {
  (cd "$REPO_ROOT" && exec cargo build -q -p sim-kubelet) </dev/null >"$LOGS/cargo-build.log" 2>&1 9>&- &
  SIM_BUILD_PID=$!
}

finish_sim_build() {
  if ! wait "$SIM_BUILD_PID"; then
    SIM_BUILD_PID=
    die_log cargo-build "cargo build -p sim-kubelet failed"
  fi
  SIM_BUILD_PID=
  [ -x "$(sim_bin)" ] || die "$(sim_bin) missing after cargo build"
}

start_sim() {
  local -a extra=()
  read -r -a extra <<<"${STS_SAFE_SIM_ARGS:-}"
  # NO_COLOR: plain log lines (tracing-subscriber honours it), easy to grep.
  local -a mode=(--nodes "$SIM_NODES")
  [ "$REAL_SCHEDULER" = 0 ] || mode+=(--no-scheduler)
  # The pods' metrics for Prometheus: a fresh targets file (the old pods are gone).
  mkdir -p "$(dirname "$PROM_SD_FILE")"
  rm -f "$PROM_SD_FILE"
  mode+=(--metrics-listen "127.0.0.1:$SIM_METRICS_PORT" --prometheus-sd-file "$PROM_SD_FILE")
  NO_COLOR=1 launch sim-kubelet "$(sim_bin)" --kubeconfig "$KUBECONFIG_OUT" --context sts-safe-admin "${mode[@]}" "${extra[@]}"
}

# Whether the running sim-kubelet exports metrics (one started by an older cluster.sh
# does not, and is restarted).
sim_has_metrics() {
  local pid
  pid=$(running_pid sim-kubelet) || return 1
  tr '\0' '\n' <"/proc/$pid/cmdline" | grep -qx -- --prometheus-sd-file
}

# ---------------------------------------------------------------------------- Prometheus

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Installs Debian's prometheus if $PROM_BIN is missing. The package would start its own
# service on :9090; a policy-rc.d (temporary, unless the machine has one) keeps it from
# starting during the install, and a service that started anyway is stopped.
ensure_prometheus() {
  [ -x "$PROM_BIN" ] && return 0
  command -v apt-get >/dev/null ||
    die "$PROM_BIN missing and no apt-get to install it: install Prometheus 2.x there (Debian: apt-get install prometheus)"
  log "installing Debian's prometheus (the metric gate tests scrape sim-kubelet with it)"
  local policy=/usr/sbin/policy-rc.d own_policy=0 rc=0
  if [ ! -e "$policy" ]; then
    as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
    own_policy=1
  fi
  as_root apt-get update -qq >/dev/null || rc=$?
  if [ "$rc" = 0 ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null || rc=$?
  fi
  [ "$own_policy" = 0 ] || as_root rm -f "$policy"
  [ "$rc" = 0 ] || die "apt-get install prometheus failed (exit $rc)"
  # Belt and braces: the package's service must not hold :9090 (and be enabled at boot).
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    as_root systemctl disable --now prometheus >/dev/null 2>&1 || true
  elif [ -x /etc/init.d/prometheus ]; then
    as_root /etc/init.d/prometheus stop >/dev/null 2>&1 || true
  fi
  [ -x "$PROM_BIN" ] || die "$PROM_BIN missing after installing the prometheus package"
}

write_prometheus_config() {
  mkdir -p "$PROM_DIR" "$(dirname "$PROM_SD_FILE")"
  local tmp=$PROM_CONFIG.tmp.$$
  cat >"$tmp" <<YAML
# Generated by scripts/cluster.sh up: scrapes sim-kubelet's per-pod metrics pages.
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: sim-pods
    file_sd_configs:
      - files: ['$PROM_SD_FILE']
        refresh_interval: 1s
  - job_name: prometheus
    static_configs:
      - targets: ['127.0.0.1:$PROM_PORT']
YAML
  mv -f "$tmp" "$PROM_CONFIG"
}

prometheus_ready() {
  [ "$(curl -s --max-time 1 -o /dev/null -w '%{http_code}' "$PROM_URL/-/ready" 2>/dev/null)" = 200 ]
}

# Starts Prometheus on the existing configuration and data, and waits for /-/ready.
start_prometheus() {
  launch prometheus "$PROM_BIN" --config.file="$PROM_CONFIG" \
    --storage.tsdb.path="$PROM_DIR/data" --storage.tsdb.retention.time=2h \
    --web.listen-address="127.0.0.1:$PROM_PORT" --web.external-url="$PROM_URL/"
  wait_until prometheus "Prometheus $PROM_URL/-/ready" prometheus_ready
}

rotate_logs() {
  local f
  for f in etcd kube-apiserver kube-controller-manager kube-scheduler sim-kubelet prometheus cargo-build audit; do
    if [ -f "$LOGS/$f.log" ]; then mv -f "$LOGS/$f.log" "$LOGS/$f.log.1"; fi
  done
  rm -f "$LOGS"/audit-*.log # the previous run's size-rotated audit backups
}

STARTED=()
SIM_BUILD_PID=
UP_OK=0
CP_STARTED=0
T0=0
PHASES=""
phase() { PHASES+=" $1 $(($(now_ms) - T0))"; }

# On a failed `up`: stop what this run started (the logs stay for inspection).
cleanup_failed_up() {
  if [ "$UP_OK" != 1 ]; then
    if [ -n "$SIM_BUILD_PID" ]; then kill "$SIM_BUILD_PID" 2>/dev/null || true; fi
    if [ "${#STARTED[@]}" -gt 0 ]; then
      log "up failed; stopping ${STARTED[*]} (logs in $LOGS)"
      stop_in_order "${STARTED[@]}"
      [ "$CP_STARTED" = 0 ] || rm -f "$RUN/components"
    fi
  fi
}

cmd_up() {
  local name
  T0=$(now_ms)
  mkdir -p "$RUN" "$LOGS"
  command -v cargo >/dev/null || PATH=$HOME/.cargo/bin:$PATH
  # One `up`/`down` at a time; fd 9 is closed in every daemon so the lock dies with us.
  exec 9>>"$RUN/lock"
  flock -w 900 9 || die "another cluster.sh holds $RUN/lock"

  local cp_up=1 sim_up=0
  for name in "${CONTROL_PLANE[@]}"; do is_running "$name" || cp_up=0; done
  sim_has_metrics && sim_up=1
  if [ "$cp_up" = 1 ] && { ! sim_wanted || { [ "$sim_up" = 1 ] && is_running prometheus; }; }; then
    log "already running (state in $STATE)"
    export_line
    return 0
  fi
  trap cleanup_failed_up EXIT
  trap 'exit 130' INT TERM
  if [ "$cp_up" = 1 ]; then
    # The control plane runs, only the simulator or Prometheus is missing (e.g. the
    # previous up ran with STS_SAFE_NO_SIM=1, or one of them died, or the simulator was
    # started without metrics by an older version of this script): start just those.
    ensure_prometheus
    if [ "$sim_up" = 0 ]; then
      if is_running sim-kubelet; then
        log "sim-kubelet runs without metrics; restarting it"
        stop_components sim-kubelet
      fi
      log "control plane already running; starting sim-kubelet"
      [ -f "$LOGS/sim-kubelet.log" ] && mv -f "$LOGS/sim-kubelet.log" "$LOGS/sim-kubelet.log.1"
      start_sim_build
      finish_sim_build
      start_sim
      wait_until sim-kubelet "sim-kubelet ready" sim_ready
    fi
    if ! is_running prometheus; then
      log "starting Prometheus"
      [ -f "$LOGS/prometheus.log" ] && mv -f "$LOGS/prometheus.log" "$LOGS/prometheus.log.1"
      rm -rf "$PROM_DIR/data"
      write_prometheus_config
      start_prometheus
    fi
    printf '%s\n' "${ALL_COMPONENTS[@]}" >"$RUN/components"
    UP_OK=1
    log "sim-kubelet and Prometheus ready in $(($(now_ms) - T0))ms (Prometheus: $PROM_URL)"
    export_line
    return 0
  fi

  # Leftovers of a partly running cluster (ours only, by pid file) go first.
  local leftovers=()
  for name in "${ALL_COMPONENTS[@]}"; do is_running "$name" && leftovers+=("$name"); done
  if [ "${#leftovers[@]}" -gt 0 ]; then
    log "cluster partly running; stopping ${leftovers[*]} first"
    stop_in_order "${leftovers[@]}"
  fi
  rm -f "$RUN"/*.pid "$RUN/components"
  CP_STARTED=1

  local bin_dir
  bin_dir=$(bash "$SCRIPT_DIR/$BUILD_SCRIPT" | tail -n1) || die "scripts/$BUILD_SCRIPT failed"
  phase k8s-build
  for name in "${CONTROL_PLANE[@]}"; do
    [ "$name" = etcd ] || [ -x "$bin_dir/$name" ] || die "$name missing in '$bin_dir'"
  done
  # 1.20 runs Debian's etcd (3.4); the current version the etcd it is tested with.
  local etcd_bin=/usr/bin/etcd
  [ "$K8S_VERSION" = v1.20.2 ] || etcd_bin=$bin_dir/etcd
  [ -x "$etcd_bin" ] || die "$etcd_bin missing (v1.20.2: apt-get install etcd-server)"

  if sim_wanted; then ensure_prometheus; fi

  local port
  local -a ports=("$ETCD_CLIENT_PORT" "$ETCD_PEER_PORT" "$API_PORT")
  [ "$REAL_SCHEDULER" = 0 ] || ports+=("$SCHED_PORT")
  if sim_wanted; then ports+=("$SIM_METRICS_PORT" "$PROM_PORT"); fi
  for port in "${ports[@]}"; do
    if port_in_use "$port"; then
      die "port $port on 127.0.0.1 is in use by a process this script did not start (another cluster with a different STS_SAFE_CLUSTER_DIR?)"
    fi
  done

  rotate_logs
  if sim_wanted; then start_sim_build; fi # compiles while the control plane boots

  local adv
  adv=$(advertise_address)
  ensure_pki "$adv"
  write_kubeconfig "$KUBECONFIG_OUT" admin limited
  write_kubeconfig "$CM_KUBECONFIG" admin
  [ "$REAL_SCHEDULER" = 0 ] || write_kubeconfig "$SCHED_KUBECONFIG" admin
  phase pki

  rm -rf "$STATE/etcd"
  mkdir -p "$STATE/etcd"
  chmod 700 "$STATE/etcd"
  launch etcd "$etcd_bin" --name=sts-safe --data-dir="$STATE/etcd" \
    --listen-client-urls="https://127.0.0.1:$ETCD_CLIENT_PORT" \
    --advertise-client-urls="https://127.0.0.1:$ETCD_CLIENT_PORT" \
    --listen-peer-urls="https://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls="https://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="sts-safe=https://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster-state=new --initial-cluster-token=sts-safe \
    --cert-file="$PKI/etcd.crt" --key-file="$PKI/etcd.key" \
    --trusted-ca-file="$PKI/ca.crt" --client-cert-auth \
    --peer-cert-file="$PKI/etcd.crt" --peer-key-file="$PKI/etcd.key" \
    --peer-trusted-ca-file="$PKI/ca.crt" --peer-client-cert-auth \
    --logger=zap --log-outputs=stderr --log-level=warn
  wait_until etcd "etcd health" etcd_healthy
  phase etcd

  local -a api_extra=()
  read -r -a api_extra <<<"${STS_SAFE_APISERVER_ARGS:-}"
  # --disable-admission-plugins=ServiceAccount: without the plugin pods get no service
  # account token volume, so creating a pod never waits for (or fails on) the token
  # controller having created the namespace's default ServiceAccount and its secret.
  # --enable-priority-and-fairness=false: saves CPU on this small machine.
  # --default-{not-ready,unreachable}-toleration-seconds=2: the tolerations the
  # DefaultTolerationSeconds admission plugin gives every pod, so the taint manager
  # evicts the pods of a lost (powered-off) node 2 s after it is tainted, not 5 min.
  # Flags 1.37 no longer has: the insecure ports (gone since 1.24).
  local -a insecure_off=()
  [ "$K8S_VERSION" != v1.20.2 ] || insecure_off=(--insecure-port=0)
  launch kube-apiserver "$bin_dir/kube-apiserver" \
    --bind-address=127.0.0.1 --secure-port="$API_PORT" "${insecure_off[@]}" \
    --advertise-address="$adv" \
    --etcd-servers="https://127.0.0.1:$ETCD_CLIENT_PORT" --etcd-cafile="$PKI/ca.crt" \
    --etcd-certfile="$PKI/apiserver-etcd-client.crt" --etcd-keyfile="$PKI/apiserver-etcd-client.key" \
    --client-ca-file="$PKI/ca.crt" \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --authorization-mode=Node,RBAC \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --service-account-issuer="$SA_ISSUER" --api-audiences="$SA_ISSUER" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --disable-admission-plugins=ServiceAccount \
    --enable-priority-and-fairness=false \
    --default-not-ready-toleration-seconds=2 --default-unreachable-toleration-seconds=2 \
    --allow-privileged=true --profiling=false \
    --audit-policy-file="$SCRIPT_DIR/audit-policy.yaml" --audit-log-path="$LOGS/audit.log" \
    --audit-log-format=json --audit-log-maxsize=200 --audit-log-maxbackup=1 \
    "${api_extra[@]}"
  wait_until kube-apiserver "kube-apiserver /readyz" apiserver_ready
  phase apiserver

  local -a cm_extra=()
  read -r -a cm_extra <<<"${STS_SAFE_CONTROLLER_MANAGER_ARGS:-}"
  # --node-monitor-grace-period=16s --node-monitor-period=2s: a node whose kubelet stops
  # (sim-kubelet's power-off; it renews Leases every 2 s, posts status every 10 s) is
  # marked Ready=Unknown and tainted unreachable within ~16-20 s instead of 40-45 s.
  launch kube-controller-manager "$bin_dir/kube-controller-manager" \
    --kubeconfig="$CM_KUBECONFIG" \
    --controllers='*' --leader-elect=false \
    --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
    --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
    --use-service-account-credentials=false \
    ${insecure_off:+--port=0} --secure-port=0 --profiling=false \
    --kube-api-qps=100 --kube-api-burst=200 \
    --node-monitor-grace-period=16s --node-monitor-period=2s \
    "${cm_extra[@]}"

  if [ "$REAL_SCHEDULER" = 1 ]; then
    launch kube-scheduler "$bin_dir/kube-scheduler" \
      --kubeconfig="$SCHED_KUBECONFIG" --leader-elect=false \
      --bind-address=127.0.0.1 --secure-port="$SCHED_PORT" --profiling=false \
      --kube-api-qps=100 --kube-api-burst=200
  fi

  local components=("${CONTROL_PLANE[@]}")
  if sim_wanted; then
    finish_sim_build
    phase cargo-build
    start_sim
    wait_until sim-kubelet "sim-kubelet ready" sim_ready
    phase sim-kubelet
    components+=(sim-kubelet)
    rm -rf "$PROM_DIR/data"
    write_prometheus_config
    start_prometheus
    phase prometheus
    components+=(prometheus)
  fi
  wait_until kube-controller-manager "kube-controller-manager to create default/default" controllers_working
  phase controller-manager
  if [ "$REAL_SCHEDULER" = 1 ]; then
    wait_until kube-scheduler "kube-scheduler /healthz" scheduler_healthy
    phase scheduler
  fi
  printf '%s\n' "${components[@]}" >"$RUN/components"
  UP_OK=1
  log "ready in $(($(now_ms) - T0))ms (${components[*]}; logs in $LOGS)"
  if sim_wanted; then log "Prometheus: $PROM_URL (scrapes sim-kubelet's pods: job sim-pods)"; fi
  log "timeline (ms since start):$PHASES"
  export_line
}

cmd_down() {
  mkdir -p "$RUN"
  exec 9>>"$RUN/lock"
  flock -w 900 9 || die "another cluster.sh holds $RUN/lock"
  local name running=()
  for name in "${ALL_COMPONENTS[@]}"; do is_running "$name" && running+=("$name"); done
  if [ "${#running[@]}" -gt 0 ]; then
    log "stopping ${running[*]}"
    stop_in_order "${running[@]}"
  fi
  rm -f "$RUN"/*.pid "$RUN/components"
}

cmd_status() {
  local name pid all=1 ready
  while read -r name; do
    if pid=$(running_pid "$name"); then
      ready=""
      if [ "$name" = kube-apiserver ]; then
        if [ -f "$PKI/admin.crt" ] && apiserver_ready; then ready=" ready"; else ready=" NOT ready"; all=0; fi
      fi
      if [ "$name" = prometheus ]; then
        if prometheus_ready; then ready=" ready at $PROM_URL"; else ready=" NOT ready at $PROM_URL"; all=0; fi
      fi
      printf '%-24s running (pid %s)%s\n' "$name" "$pid" "$ready"
    else
      printf '%-24s not running\n' "$name"
      all=0
    fi
  done < <(expected_components)
  [ "$all" = 1 ]
}

# Stops one component `up` started and starts it again with exactly the same command line
# (read from /proc before stopping); the previous log is kept as <name>.log.1.
restart_component() {
  local name=$1 what=$2 ready=$3 down=${4:-0} pid t0
  local -a argv=()
  pid=$(running_pid "$name") || die "$name is not running (start the cluster with: $0 up)"
  mapfile -d '' argv <"/proc/$pid/cmdline" || die "cannot read /proc/$pid/cmdline"
  [ "${#argv[@]}" -gt 1 ] || die "empty command line for $name (pid $pid)"
  [ -x "${argv[0]}" ] || die "${argv[0]} ($name binary) is missing"
  log "stopping $name (pid $pid)"
  stop_components "$name"
  t0=$(now_ms)
  [ -f "$LOGS/$name.log" ] && mv -f "$LOGS/$name.log" "$LOGS/$name.log.1"
  if [ "$down" != 0 ]; then
    log "keeping $name down for ${down}s"
    sleep "$down"
  fi
  # If the new one does not become ready, fail showing its log (`down` still stops it
  # through its pid file); the other components are left alone.
  launch "$name" "${argv[@]}"
  wait_until "$name" "$what" "$ready"
  log "$name restarted (pid $(<"$RUN/$name.pid")): ready $(($(now_ms) - t0))ms after the old one stopped"
}

cmd_restart_apiserver() {
  T0=$(now_ms)
  mkdir -p "$RUN" "$LOGS"
  exec 9>>"$RUN/lock"
  flock -w 900 9 || die "another cluster.sh holds $RUN/lock"
  local down=${1:-0}
  [[ "$down" =~ ^[0-9]+$ ]] || die "restart-apiserver [SECONDS_DOWN]: not a number of seconds: $down"
  restart_component kube-apiserver "kube-apiserver /readyz" apiserver_ready "$down"
  # The real kube-scheduler does not always come back from an API server restart: its pod
  # informer can stall for minutes ("Scheduler cache is corrupted", new pods never bound;
  # production clusters report the same after outages). The fault tests are about the
  # plugin, so the scheduler is restarted as an operator would.
  # kube-controller-manager v1.37.2 can stall the same way: its pod informer kept missing
  # a running pod for minutes after a restart (the StatefulSet controller tried to create
  # it again instead of adopting it: "already exists"), so it is restarted too.
  if [ "$REAL_SCHEDULER" = 1 ]; then
    restart_component kube-scheduler "kube-scheduler /healthz" scheduler_healthy
    restart_component kube-controller-manager "kube-controller-manager's controllers" controller_manager_started
  fi
  log "restart done in $(($(now_ms) - T0))ms"
}

cmd_prometheus_stop() {
  mkdir -p "$RUN"
  exec 9>>"$RUN/lock"
  flock -w 900 9 || die "another cluster.sh holds $RUN/lock"
  local pid
  if pid=$(running_pid prometheus); then
    log "stopping prometheus (pid $pid); its data stay in $PROM_DIR/data"
    stop_components prometheus
  else
    log "prometheus is not running"
  fi
}

cmd_prometheus_start() {
  T0=$(now_ms)
  mkdir -p "$RUN" "$LOGS"
  exec 9>>"$RUN/lock"
  flock -w 900 9 || die "another cluster.sh holds $RUN/lock"
  if is_running prometheus; then
    log "prometheus already running ($PROM_URL)"
    return 0
  fi
  expected_components | grep -qx prometheus ||
    die "Prometheus is not part of this cluster (start it with: $0 up)"
  ensure_prometheus
  port_in_use "$PROM_PORT" && die "port $PROM_PORT on 127.0.0.1 is in use by a process this script did not start"
  [ -f "$LOGS/prometheus.log" ] && mv -f "$LOGS/prometheus.log" "$LOGS/prometheus.log.1"
  write_prometheus_config
  # If it does not become ready, fail showing its log (`down` still stops it).
  start_prometheus
  log "prometheus started (pid $(<"$RUN/prometheus.pid")): ready in $(($(now_ms) - T0))ms at $PROM_URL"
}

case ${1:-} in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) export_line ;;
  restart-apiserver) cmd_restart_apiserver "${2:-0}" ;;
  prometheus-stop) cmd_prometheus_stop ;;
  prometheus-start) cmd_prometheus_start ;;
  *)
    echo "usage: $0 up|down|status|env|restart-apiserver|prometheus-stop|prometheus-start" >&2
    exit 2
    ;;
esac
