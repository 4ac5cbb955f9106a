#!/usr/bin/env bash
# The baseline for the canary benchmark: a partitioned rollout done by hand the way the
# seed describes it — set the new image with the partition frozen at the replica count,
# then lower the partition one pod at a time, polling `kubectl rollout status` and
# `kubectl get pods` every 2 s until the step's pod is updated and Ready.
#
# Usage: shell-canary.sh NAMESPACE STATEFULSET CONTAINER IMAGE
set -euo pipefail
ns=$1 sts=$2 container=$3 image=$4
POLL=${SHELL_CANARY_POLL:-2}

replicas=$(kubectl -n "$ns" get statefulset "$sts" -o jsonpath='{.spec.replicas}')
selector=$(kubectl -n "$ns" get statefulset "$sts" -o jsonpath='{.spec.selector.matchLabels.app}')

# Freeze: no pod may be replaced until we lower the partition.
kubectl -n "$ns" patch statefulset "$sts" --type merge \
  -p "{\"spec\":{\"updateStrategy\":{\"type\":\"RollingUpdate\",\"rollingUpdate\":{\"partition\":$replicas}}}}" >/dev/null
kubectl -n "$ns" set image "statefulset/$sts" "$container=$image" >/dev/null

for ((p = replicas - 1; p >= 0; p--)); do
  kubectl -n "$ns" patch statefulset "$sts" --type merge \
    -p "{\"spec\":{\"updateStrategy\":{\"rollingUpdate\":{\"partition\":$p}}}}" >/dev/null
  echo "partition → $p"
  while true; do
    sleep "$POLL"
    kubectl -n "$ns" get pods -l "app=$selector" >/dev/null
    out=$(kubectl -n "$ns" rollout status "statefulset/$sts" --watch=false 2>&1 || true)
    case $out in
      *"partitioned roll out complete"* | *"rolling update complete"*) break ;;
    esac
  done
done
echo "done: $image on all $replicas pods"
