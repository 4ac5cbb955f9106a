#!/usr/bin/env bash
# `make demo`: the plugin's main job on the embedded local cluster, with a transcript.
#   1. bring up the local control plane (builds it the first time)
#   2. create the seed's Redis StatefulSet and headless Service
#   3. kubectl sts-safe status
#   4. a canary to a healthy image (--yes)
#   5. a canary to a crash-looping image: it stops on the first pod and rolls back
#   6. a release whose pods answer with errors: the Prometheus gate (the cluster's real
#      Prometheus, scraping the simulator's metrics) stops it at the first pod; rollback
set -euo pipefail
cd "$(dirname "$0")/.."
NS=${DEMO_NAMESPACE:-production}
TRANSCRIPT=${DEMO_TRANSCRIPT:-target/demo-transcript.txt}

say() { printf '\n\033[1m### %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

export_line=$(bash scripts/cluster.sh up | tail -n1)
eval "$export_line"
cargo build -q --bin kubectl-sts_safe
export PATH="$PWD/target/debug:$PATH" NO_COLOR=${NO_COLOR:-}
mkdir -p "$(dirname "$TRANSCRIPT")"

{
  server=$(kubectl get --raw /version | sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p')
  say "The local cluster (kube-apiserver $server, sim-kubelet as the kubelet)"
  run kubectl get nodes
  kubectl get namespace "$NS" >/dev/null 2>&1 && kubectl delete namespace "$NS" --wait=true >/dev/null
  kubectl create namespace "$NS" >/dev/null
  kubectl apply -f - >/dev/null <<'SC'
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: gp3-encrypted}
provisioner: sts-safe.dev/sim
reclaimPolicy: Delete
SC

  say "The seed's Redis StatefulSet and its headless Service"
  run kubectl -n "$NS" apply -f tests/fixtures/seed-redis.yaml
  run kubectl -n "$NS" rollout status statefulset/redis --timeout=60s

  say "kubectl sts-safe status"
  run kubectl sts-safe status redis -n "$NS"

  say "kubectl sts-safe doctor (the seed has no securityContext and no PDB)"
  run kubectl sts-safe doctor redis -n "$NS" || true

  say "Canary to a healthy image: top ordinal first, one pod per step"
  run kubectl sts-safe canary redis -n "$NS" --image redis=redis:7.4-alpine --yes

  say "Canary to a crash-looping image: stops on the first pod, then rolls back"
  set +e
  run kubectl sts-safe canary redis -n "$NS" --image redis=redis:7.4-crashloop --on-failure rollback --yes
  code=$?
  set -e
  echo "(exit code $code: a health gate stopped the rollout)"

  say "A release whose pods answer half their requests with errors: the Prometheus gate stops it"
  release=$(mktemp)
  printf '%s\n' 'metadata:' '  annotations:' '    sim.sts-safe.dev/metrics: errors' \
    'spec:' '  containers:' '    - name: redis' '      image: redis:7.4.1-alpine' >"$release"
  set +e
  run kubectl sts-safe canary redis -n "$NS" --patch "$release" --prometheus "$STS_SAFE_PROMETHEUS" \
    --fail-if 'sum(rate(http_requests_total{namespace="$NAMESPACE",pod="$POD",code=~"5.."}[1m])) / sum(rate(http_requests_total{namespace="$NAMESPACE",pod="$POD"}[1m])) > 0.01' \
    --require 'up{namespace="$NAMESPACE",pod="$POD"} == 1' --metric-interval 2s --soak 5s --yes
  code=$?
  set -e
  rm -f "$release"
  echo "(exit code $code: the metric gate stopped the rollout at its first pod)"
  run kubectl sts-safe rollback redis -n "$NS" --yes

  say "Back where we started: every pod Ready on the healthy revision"
  run kubectl sts-safe status redis -n "$NS"
} 2>&1 | tee "$TRANSCRIPT"

echo
echo "Transcript: $TRANSCRIPT"
echo "The cluster keeps running for you to explore: $export_line"
echo "Stop it with: make cluster-down"
