#!/usr/bin/env bash
# `make bench`: measures kubectl sts-safe on the local cluster and writes bench/RESULTS.md.
#
#   1. installs what the driver needs (python3) if missing — idempotent, via apt
#   2. cargo build --release (profile: lto, codegen-units=1, strip)
#   3. starts the local cluster (scripts/cluster.sh up) unless it already runs; a cluster
#      this script started is stopped again at the end, one that ran before is left running
#   4. scripts/bench/driver.py: canary reaction / overhead / API cost (with a shell-loop
#      baseline, and the plugin as of BENCH_BEFORE_COMMIT, before the lock, side by side), start-up, prune-pvcs -A on 5,000 PVCs; timings and request counts from
#      the kube-apiserver audit log; writes bench/RESULTS.md and prints a summary
#      (`python3 scripts/bench/driver.py --only metrics --plugin … --audit-log …` runs row 9
#      alone against the running cluster and prints it, leaving RESULTS.md as it is)
#
# The benchmark uses its own namespaces (sts-safe-bench, sts-safe-bench-prune-0…9) and
# deletes them at the end. Environment: BENCH_CANARY_RUNS (5), BENCH_SHELL_RUNS (3),
# BENCH_STARTUP_RUNS (10), BENCH_PRUNE_RUNS (7), BENCH_RESIZE_RUNS (3), BENCH_SKIP_PRUNE=1,
# STS_SAFE_CLUSTER_DIR, BENCH_RECOVER_RUNS (3), BENCH_RECOVER_FLOOR=0, BENCH_METRICS_RUNS (3).
# Row 7: resize-pvcs of 10 replicas (scripts/bench/resize.py). Row 8: recover of a pod
# stranded on a lost node (scripts/bench/recover.py), on the current server and, first, on
# the 1.20 floor. Row 9: a canary with a Prometheus metric gate (scripts/bench/metrics.py),
# against the cluster's Prometheus (STS_SAFE_PROMETHEUS from cluster.sh's export line;
# namespace sts-safe-bench-metrics; skipped when the cluster runs without Prometheus).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
STATE=${STS_SAFE_CLUSTER_DIR:-$HOME/.cache/sts-safe/cluster}
T0=$SECONDS
export PYTHONDONTWRITEBYTECODE=1

log() { echo "bench: $*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

APT_UPDATED=0
apt_install() {
  if [ "$APT_UPDATED" = 0 ]; then
    as_root apt-get update -qq >/dev/null
    APT_UPDATED=1
  fi
  log "installing $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Python 3.9+ (standard library only) runs the driver.
python_ok() { python3 -c 'import sys; sys.exit(sys.version_info < (3, 9))' 2>/dev/null; }
python_ok || apt_install python3
command -v git >/dev/null || apt_install git
[ -x /usr/bin/time ] || apt_install time # GNU time: the peak RSS of a measured process
command -v cargo >/dev/null || PATH=$HOME/.cargo/bin:$PATH

log "cargo build --release"
cargo build --release
TARGET=${CARGO_TARGET_DIR:-target}
case $TARGET in /*) ;; *) TARGET=$REPO/$TARGET ;; esac
PLUGIN=$TARGET/release/kubectl-sts_safe
[ -x "$PLUGIN" ] || { log "error: $PLUGIN missing after the build"; exit 1; }

# The plugin as it was before the lock (issue 13), built once from that commit and cached
# outside the repo: the canary benchmark runs it alternately with this one, so the lock's
# cost is measured side by side. BENCH_BEFORE_COMMIT= (empty) skips it.
BEFORE_COMMIT=${BENCH_BEFORE_COMMIT-d3bcbe1}
BEFORE_ARGS=()
if [ -n "$BEFORE_COMMIT" ]; then
  BEFORE_DIR=$HOME/.cache/sts-safe/bench-before-$BEFORE_COMMIT
  BEFORE=$BEFORE_DIR/kubectl-sts_safe
  if [ ! -x "$BEFORE" ]; then
    log "building the plugin as of $BEFORE_COMMIT (before the lock), once"
    rm -rf "$BEFORE_DIR/src" && mkdir -p "$BEFORE_DIR/src"
    git archive "$BEFORE_COMMIT" | tar -x -C "$BEFORE_DIR/src"
    (cd "$BEFORE_DIR/src" && cargo build --release --bin kubectl-sts_safe --target-dir "$BEFORE_DIR/target")
    cp "$BEFORE_DIR/target/release/kubectl-sts_safe" "$BEFORE"
    rm -rf "$BEFORE_DIR/src" "$BEFORE_DIR/target"
  fi
  BEFORE_ARGS=(--before-plugin "$BEFORE" --before-commit "$BEFORE_COMMIT")
fi

# Stop the cluster at the end only if no part of it ran before.
STARTED_CLUSTER=0
cluster_status=$(bash scripts/cluster.sh status 2>/dev/null || true)
if ! grep -q 'running (pid' <<<"$cluster_status"; then STARTED_CLUSTER=1; fi
cleanup() {
  local rc=$?
  if [ "$STARTED_CLUSTER" = 1 ]; then
    log "stopping the cluster this run started"
    bash scripts/cluster.sh down || true
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# Row 8's floor figure: recover on the 1.20 cluster, where the method is force-delete and
# the attach/detach controller detaches only after its 6-minute timeout (one run, about
# 7 minutes; BENCH_RECOVER_FLOOR=0 skips it). Measured first, on its own cluster.
FLOOR_JSON=$REPO/target/bench/recover-floor.json
rm -f "$FLOOR_JSON"
if [ "${BENCH_RECOVER_FLOOR:-1}" != 0 ] && [ "${BENCH_RECOVER_RUNS:-3}" != 0 ]; then
  log "recover on the v1.20.2 floor (force detach: about 7 minutes)"
  floor_started=0
  # The floor's own state dir and ports (a STS_SAFE_CLUSTER_DIR given for the main run is not its).
  floor() { env -u STS_SAFE_CLUSTER_DIR -u STS_SAFE_API_PORT -u STS_SAFE_ETCD_PORT K8S_VERSION=v1.20.2 bash scripts/cluster.sh "$@"; }
  floor status >/dev/null 2>&1 || floor_started=1
  floor_line=$(floor up | tail -n1)
  mkdir -p "$REPO/target/bench"
  (eval "$floor_line" && python3 scripts/bench/recover.py --plugin "$PLUGIN" --out "$FLOOR_JSON") ||
    log "warning: the floor's recover run failed; row 8 shows the current server only"
  if [ "$floor_started" = 1 ]; then floor down || true; fi
fi
export_line=$(bash scripts/cluster.sh up | tail -n1)
# Row 9 asks the Prometheus of this cluster (the export line names it), not one set before.
unset STS_SAFE_PROMETHEUS
eval "$export_line"
# The state dir of the version that runs (K8S_VERSION; the kubeconfig lives in it).
STATE=$(dirname "$KUBECONFIG")
export STS_SAFE_CLUSTER_DIR=$STATE
command -v kubectl >/dev/null || bash scripts/k8s-build.sh >/dev/null

log "running the benchmarks (about 12 minutes)"
python3 scripts/bench/driver.py --plugin "$PLUGIN" --audit-log "$STATE/logs/audit.log" --recover-floor "$FLOOR_JSON" \
  --prometheus "${STS_SAFE_PROMETHEUS:-}" "${BEFORE_ARGS[@]}"
log "done in $(((SECONDS - T0) / 60))m$(((SECONDS - T0) % 60))s (build included)"
