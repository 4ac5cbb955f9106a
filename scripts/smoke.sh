#!/usr/bin/env bash
# `make smoke`: the plugin's main job, end to end, against the cluster you point it at
# (kind, k3d, minikube, a managed test cluster, or the local cluster of scripts/cluster.sh),
# with real public images:
#   1. a Redis StatefulSet (3 replicas, one small PVC each) in a namespace of its own
#   2. a healthy canary (redis:7.2-alpine → redis:7.4-alpine)
#   3. a release whose container exits 1: the canary stops at the first pod and rolls back
#   4. a release whose readiness probe fails: the canary stops at the first pod (pause),
#      then `kubectl sts-safe rollback`
#   5. scale 3 → 5 with the PVC preview (created), 5 → 3 (kept), 3 → 4 (reattached)
#   6. prune-pvcs deletes exactly the one orphan left (and no live claim)
# Every step prints what it runs and what it checks; the first failed check prints
# "FAILED: step …" and exits 1. The namespace (and any volume left behind by its claims)
# is deleted on exit, also on failure and Ctrl-C.
#
# Which cluster: $KUBECONFIG (else ~/.kube/config), its current context or SMOKE_CONTEXT.
# The context must look like a test cluster, else the script refuses (exit 2) before it
# writes anything: kind-*, k3d-*, minikube, docker-desktop, docker-for-desktop,
# rancher-desktop, colima, colima-*, orbstack, sts-safe-* (scripts/cluster.sh), or a name
# with a word test, testing, dev, sandbox or e2e (words split on - _ . : / @); a name with
# a word prod or production is refused even then. SMOKE_ALLOW_CONTEXT=<that exact context
# name> overrides the refusal.
#
# Environment:
#   KUBECONFIG              the cluster (kubectl's own variable)
#   SMOKE_CONTEXT           kubeconfig context (default: the current one)
#   SMOKE_ALLOW_CONTEXT     run against this context even though its name does not look
#                           like a test cluster (must equal the context's name)
#   SMOKE_STORAGE_CLASS     StorageClass of the PVCs (default: the cluster's default class;
#                           without one the script stops and asks for this variable)
#   SMOKE_PVC_SIZE          size of each PVC (default 64Mi)
#   SMOKE_IMAGE             the starting image (default redis:7.2-alpine)
#   SMOKE_NEW_IMAGE         the healthy release (default redis:7.4-alpine); both must be
#                           Redis images (the readiness probe runs redis-cli ping)
#   SMOKE_STEP_TIMEOUT      --step-timeout of canary/scale, --timeout of rollback (3m)
#   SMOKE_UNREADY_TIMEOUT   --step-timeout of the never-Ready release: the gate gives up on
#                           a Running pod that is not Ready only then, so it must cover the
#                           pod's replacement (volume re-attach included). Default 60s; 8s
#                           when every node is sim-kubelet's (container runtime sim://,
#                           the local cluster), where a pod starts in under a second
#   SMOKE_SETUP_TIMEOUT     initial rollout and namespace deletion (default 10m)
#   SMOKE_KEEP_NAMESPACE=1  leave the namespace for inspection instead of deleting it
#   STS_SAFE_BIN            the plugin binary to test (default: cargo build -q --bin
#                           kubectl-sts_safe, target/debug/kubectl-sts_safe)
# Needs kubectl and python3 (for the -o json assertions).
set -euo pipefail
cd "$(dirname "$0")/.."

STEP_TIMEOUT=${SMOKE_STEP_TIMEOUT:-3m}
UNREADY_TIMEOUT=${SMOKE_UNREADY_TIMEOUT:-}
SETUP_TIMEOUT=${SMOKE_SETUP_TIMEOUT:-10m}
PVC_SIZE=${SMOKE_PVC_SIZE:-64Mi}
IMAGE=${SMOKE_IMAGE:-redis:7.2-alpine}
NEW_IMAGE=${SMOKE_NEW_IMAGE:-redis:7.4-alpine}
STS=redis
REPLICAS=3

T0=$SECONDS
STEP="preflight"
NS=""
NS_CREATED=0
CLEANED=0
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sts-safe-smoke.XXXXXX")

bold() { if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then printf '\033[1m%s\033[0m\n' "$*"; else printf '%s\n' "$*"; fi; }
step() {
  STEP=$1
  shift
  echo
  bold "== step $STEP: $* (t+$((SECONDS - T0))s)"
}
note() { printf '   %s\n' "$*"; }
fail() {
  echo "FAILED: step $STEP: $*" >&2
  exit 1
}
ok() { printf '   ok: %s\n' "$*"; }

# kubectl / the plugin against the chosen context (flags after the plugin's name: kubectl
# hands them to the plugin).
CTX_ARGS=()
k() { kubectl "${CTX_ARGS[@]}" "$@"; }
sts() { kubectl sts-safe "${CTX_ARGS[@]}" "$@"; }

# plugin OUT ARGS...: runs `kubectl sts-safe ARGS`, stdout to OUT (and echoed unless it is
# JSON), stderr (progress) to the terminal; sets RC to its exit code.
RC=0
plugin() {
  local out=$1
  shift
  printf '$ kubectl sts-safe %s\n' "$*"
  set +e
  sts "$@" >"$out"
  RC=$?
  set -e
  case " $* " in
    *" -o json "*) ;;
    *) cat "$out" ;;
  esac
  note "(exit code $RC)"
  # The plugin ends on Ctrl-C itself (exit 130), so bash does not see the signal: stop here.
  if [ "$RC" = 130 ]; then
    echo "smoke: interrupted in step $STEP" >&2
    exit 130
  fi
}
expect_rc() { [ "$RC" = "$1" ] || fail "${2:-the command} exited $RC, expected $1"; }

# py FILE EXPR: prints EXPR evaluated with d = the JSON document in FILE (strings as is,
# anything else as JSON).
py() {
  python3 - "$1" "$2" <<'PY'
import json, sys
with open(sys.argv[1]) as f:
    d = json.load(f)
v = eval(sys.argv[2], {"d": d})
print(v if isinstance(v, str) else json.dumps(v, sort_keys=True))
PY
}
# check WHAT FILE EXPR: EXPR (python, d = the document in FILE) must be true.
check() {
  local what=$1 file=$2 expr=$3 got
  got=$(py "$file" "$expr") || fail "$what: cannot evaluate $expr on $file"
  [ "$got" = true ] || fail "$what (python: $expr)"
  ok "$what"
}
# same WHAT FILE EXPR EXPECTED: EXPR's value must be EXPECTED.
same() {
  local what=$1 file=$2 expr=$3 want=$4 got
  got=$(py "$file" "$expr") || fail "$what: cannot evaluate $expr on $file"
  [ "$got" = "$want" ] || fail "$what: got $got, expected $want"
  ok "$what: $got"
}
get_json() { k -n "$NS" get "$@" -o json; }
# equal WHAT GOT WANT
equal() {
  [ "$2" = "$3" ] || fail "$1: got $2, expected $3"
  ok "$1: $2"
}

cleanup() {
  local code=$?
  [ "$CLEANED" = 1 ] && return
  CLEANED=1
  trap - EXIT INT TERM
  if [ "$NS_CREATED" = 1 ]; then
    if [ "$code" != 0 ] && [ "$code" != 2 ]; then
      echo
      bold "== what the namespace held when the smoke stopped"
      sts status "$STS" -n "$NS" 2>&1 | sed 's/^/   /' || true
      k -n "$NS" get pods,pvc -o wide 2>&1 | sed 's/^/   /' || true
    fi
    if [ "${SMOKE_KEEP_NAMESPACE:-}" = 1 ]; then
      echo "smoke: SMOKE_KEEP_NAMESPACE=1: namespace $NS kept; delete it with: kubectl delete namespace $NS"
    else
      delete_namespace || true
    fi
  fi
  rm -rf "$WORK"
  if [ "$code" = 0 ]; then
    bold "smoke: PASSED in $((SECONDS - T0))s (namespace $NS)"
  elif [ "$code" = 130 ] || [ "$code" = 143 ]; then
    echo "smoke: interrupted after $((SECONDS - T0))s (exit $code)" >&2
  elif [ "$code" != 2 ]; then
    echo "smoke: failed after $((SECONDS - T0))s (exit $code)" >&2
  fi
  exit "$code"
}

# Deletes the namespace, waits until it is gone, then deletes the volumes its claims left
# (a Retain class keeps them Released; a Delete class removes them itself, which we wait for).
delete_namespace() {
  echo
  bold "== cleanup: deleting namespace $NS"
  local pvs deadline
  pvs=$(k get pv -o json 2>/dev/null | python3 -c '
import json, sys
ns = sys.argv[1]
for pv in json.load(sys.stdin)["items"]:
    ref = pv["spec"].get("claimRef") or {}
    if ref.get("namespace") == ns:
        print(pv["metadata"]["name"])' "$NS") || pvs=""
  k delete namespace "$NS" --wait=false --ignore-not-found >/dev/null
  deadline=$((SECONDS + $(seconds "$SETUP_TIMEOUT")))
  while k get namespace "$NS" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "smoke: warning: namespace $NS still exists after $SETUP_TIMEOUT; delete it by hand" >&2
      return 1
    fi
    sleep 1
  done
  note "namespace $NS deleted"
  [ -n "$pvs" ] || return 0
  deadline=$((SECONDS + 120))
  local pv left
  while :; do
    left=""
    for pv in $pvs; do
      local policy
      policy=$(k get pv "$pv" -o jsonpath='{.spec.persistentVolumeReclaimPolicy}' 2>/dev/null) || continue
      if [ "$policy" = Delete ] && [ "$SECONDS" -lt "$deadline" ]; then
        left="$left $pv"
      else
        k delete pv "$pv" --wait=false --ignore-not-found >/dev/null && note "deleted volume $pv (reclaim policy $policy)"
      fi
    done
    [ -z "$left" ] && break
    sleep 1
  done
  note "no volume of the namespace is left"
}

# seconds DURATION: 90s, 3m, 1h, 2m30s → seconds.
seconds() {
  local d=$1 total=0 n
  while [[ $d =~ ^([0-9]+)([smh])(.*)$ ]]; do
    n=${BASH_REMATCH[1]}
    case ${BASH_REMATCH[2]} in s) total=$((total + n)) ;; m) total=$((total + n * 60)) ;; h) total=$((total + n * 3600)) ;; esac
    d=${BASH_REMATCH[3]}
  done
  [ -z "$d" ] || {
    echo "smoke: bad duration $1 (use e.g. 90s, 3m, 1h)" >&2
    exit 2
  }
  echo "$total"
}

# Whether a context name looks like a test cluster (see the header).
looks_like_test_cluster() {
  local name=$1 word
  local -a words
  IFS='-_.:/@' read -r -a words <<<"$name"
  for word in "${words[@]}"; do
    case ${word,,} in prod | production) return 1 ;; esac
  done
  case $name in
    kind-* | k3d-* | minikube | docker-desktop | docker-for-desktop | rancher-desktop | colima | colima-* | orbstack | sts-safe-*) return 0 ;;
  esac
  for word in "${words[@]}"; do
    case ${word,,} in test | testing | dev | sandbox | e2e) return 0 ;; esac
  done
  return 1
}

# ---------------------------------------------------------------- preflight
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for tool in kubectl python3; do
  command -v "$tool" >/dev/null || {
    echo "smoke: error: $tool not found on PATH" >&2
    exit 2
  }
done
for d in "$STEP_TIMEOUT" "${UNREADY_TIMEOUT:-1s}" "$SETUP_TIMEOUT"; do seconds "$d" >/dev/null; done

if [ -n "${SMOKE_CONTEXT:-}" ]; then
  CONTEXT=$SMOKE_CONTEXT
  CTX_ARGS=(--context "$CONTEXT")
else
  CONTEXT=$(kubectl config current-context 2>/dev/null) || CONTEXT=""
fi
if [ -z "$CONTEXT" ]; then
  echo "smoke: error: no kubeconfig context: set KUBECONFIG (and SMOKE_CONTEXT), e.g. make smoke KUBECONFIG=~/.kube/kind" >&2
  exit 2
fi
if ! looks_like_test_cluster "$CONTEXT" && [ "${SMOKE_ALLOW_CONTEXT:-}" != "$CONTEXT" ]; then
  echo "smoke: refusing to run against context \"$CONTEXT\": its name does not look like a test cluster (kind-*, k3d-*, minikube, docker-desktop, rancher-desktop, colima*, orbstack, sts-safe-*, or a word test/dev/sandbox/e2e, and no word prod); if it is one, run again with SMOKE_ALLOW_CONTEXT=$CONTEXT" >&2
  exit 2
fi

if [ -n "${STS_SAFE_BIN:-}" ]; then
  [ -x "$STS_SAFE_BIN" ] || {
    echo "smoke: error: STS_SAFE_BIN=$STS_SAFE_BIN is not an executable file" >&2
    exit 2
  }
  BIN=$(cd "$(dirname "$STS_SAFE_BIN")" && pwd)/$(basename "$STS_SAFE_BIN")
else
  echo "smoke: building the plugin (cargo build -q --bin kubectl-sts_safe)"
  cargo build -q --bin kubectl-sts_safe
  BIN=$PWD/target/debug/kubectl-sts_safe
fi
# kubectl finds the plugin as kubectl-sts_safe on PATH: put this one first.
mkdir -p "$WORK/bin"
ln -s "$BIN" "$WORK/bin/kubectl-sts_safe"
export PATH="$WORK/bin:$PATH" NO_COLOR=1

step 0 "the cluster"
note "context $CONTEXT${KUBECONFIG:+ (KUBECONFIG=$KUBECONFIG)}, plugin $BIN"
server=$(k version -o json --request-timeout=30s 2>/dev/null |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])' 2>/dev/null) ||
  fail "cannot reach the API server of context $CONTEXT"
note "server $server; $(sts --version 2>/dev/null || echo kubectl-sts_safe)"
k get nodes 2>&1 | sed 's/^/   /' || true
if [ -z "$UNREADY_TIMEOUT" ]; then
  runtimes=$(k get nodes -o jsonpath='{range .items[*]}{.status.nodeInfo.containerRuntimeVersion}{"\n"}{end}' 2>/dev/null) || runtimes=""
  if [ -n "$runtimes" ] && ! grep -qv '^sim://' <<<"$runtimes"; then
    UNREADY_TIMEOUT=8s
    note "every node is simulated (sim-kubelet): the never-Ready release gets --step-timeout $UNREADY_TIMEOUT"
  else
    UNREADY_TIMEOUT=60s
  fi
fi
k get storageclass -o json >"$WORK/classes.json" || fail "cannot list StorageClasses"
if [ -n "${SMOKE_STORAGE_CLASS:-}" ]; then
  CLASS=$SMOKE_STORAGE_CLASS
  [ "$(py "$WORK/classes.json" "any(c['metadata']['name'] == '$CLASS' for c in d['items'])")" = true ] ||
    fail "StorageClass $CLASS (SMOKE_STORAGE_CLASS) does not exist"
  note "PVCs use StorageClass $CLASS (SMOKE_STORAGE_CLASS)"
else
  CLASS=$(py "$WORK/classes.json" "' '.join(c['metadata']['name'] for c in d['items'] if any((c['metadata'].get('annotations') or {}).get(a) == 'true' for a in ('storageclass.kubernetes.io/is-default-class', 'storageclass.beta.kubernetes.io/is-default-class')))")
  CLASS=${CLASS%% *}
  [ -n "$CLASS" ] || fail "the cluster has no default StorageClass: name one with SMOKE_STORAGE_CLASS=<class>"
  note "PVCs use the cluster's default StorageClass $CLASS (SMOKE_STORAGE_CLASS chooses another)"
fi

# ---------------------------------------------------------------- 1. the StatefulSet
NS=sts-safe-smoke-$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
step 1 "namespace $NS: StatefulSet $STS ($REPLICAS × $IMAGE, one $PVC_SIZE PVC of class $CLASS each)"
k create namespace "$NS" >/dev/null
NS_CREATED=1
k label namespace "$NS" app.kubernetes.io/created-by=sts-safe-smoke >/dev/null
cat >"$WORK/redis.yaml" <<EOF
apiVersion: v1
kind: Service
metadata: {name: $STS-headless, labels: {app: $STS}}
spec:
  clusterIP: None
  selector: {app: $STS}
  ports: [{port: 6379, name: redis}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: $STS, labels: {app: $STS}}
spec:
  serviceName: $STS-headless
  replicas: $REPLICAS
  selector: {matchLabels: {app: $STS}}
  template:
    metadata: {labels: {app: $STS}}
    spec:
      terminationGracePeriodSeconds: 10
      containers:
        - name: redis
          image: $IMAGE
          ports: [{containerPort: 6379, name: redis}]
          readinessProbe:
            exec: {command: [redis-cli, ping]}
            periodSeconds: 2
          volumeMounts: [{name: data, mountPath: /data}]
          resources:
            requests: {cpu: 10m, memory: 16Mi}
            limits: {memory: 128Mi}
  volumeClaimTemplates:
    - metadata: {name: data}
      spec:
        accessModes: [ReadWriteOnce]
        storageClassName: $CLASS
        resources: {requests: {storage: $PVC_SIZE}}
EOF
printf '$ kubectl apply -n %s -f - (Service %s-headless, StatefulSet %s)\n' "$NS" "$STS" "$STS"
k -n "$NS" apply -f "$WORK/redis.yaml" | sed 's/^/   /'
printf '$ kubectl rollout status statefulset/%s -n %s --timeout=%s\n' "$STS" "$NS" "$SETUP_TIMEOUT"
k -n "$NS" rollout status "statefulset/$STS" --timeout="$SETUP_TIMEOUT" | sed 's/^/   /' ||
  fail "the StatefulSet did not become Ready within $SETUP_TIMEOUT"
plugin "$WORK/status.json" status "$STS" -n "$NS" -o json
expect_rc 0 "status"
same "ready replicas" "$WORK/status.json" "d['replicas']['ready']" "$REPLICAS"
check "every pod Running/Ready, one Bound PVC each" "$WORK/status.json" \
  "len(d['ordinals']) == $REPLICAS and all(o['ready'] and o['phase'] == 'Running' and [p['phase'] for p in o['pvcs']] == ['Bound'] for o in d['ordinals'])"

# The StatefulSet must be back on revision $1 with every pod Ready on it, running $2
# only, and no rollout pending.
assert_on_revision() {
  local rev=$1 image=$2
  plugin "$WORK/back.json" status "$STS" -n "$NS" -o json
  expect_rc 0 "status"
  same "current revision" "$WORK/back.json" "d['currentRevision']" "$rev"
  same "update revision" "$WORK/back.json" "d['updateRevision']" "$rev"
  check "no rollout pending" "$WORK/back.json" "not d['rolloutPending']"
  check "all $REPLICAS pods Ready on $rev with image $image" "$WORK/back.json" \
    "len(d['ordinals']) == $REPLICAS and all(o['ready'] and o['revisionHash'] == '$rev' and o['images'] == ['$image'] for o in d['ordinals'])"
  get_json statefulset "$STS" >"$WORK/sts.json"
  check "the template runs the image's own command again" "$WORK/sts.json" \
    "'command' not in d['spec']['template']['spec']['containers'][0]"
  check "the template's readiness probe is redis-cli ping again" "$WORK/sts.json" \
    "d['spec']['template']['spec']['containers'][0]['readinessProbe']['exec']['command'] == ['redis-cli', 'ping']"
}

# ---------------------------------------------------------------- 2. healthy canary
step 2 "healthy canary: $IMAGE → $NEW_IMAGE, one pod per step, top ordinal first"
plugin "$WORK/canary.json" canary "$STS" -n "$NS" --image "redis=$NEW_IMAGE" --step-timeout "$STEP_TIMEOUT" --yes -o json
expect_rc 0 "the healthy canary"
same "outcome" "$WORK/canary.json" "d['outcome']" completed
same "pods per step" "$WORK/canary.json" "[s['ordinals'] for s in d['steps']]" "[[2], [1], [0]]"
GOOD=$(py "$WORK/canary.json" "d['updateRevision']")
assert_on_revision "$GOOD" "$NEW_IMAGE"

# ---------------------------------------------------------------- 3. crash-looping release
step 3 "a release whose container exits 1: stops at the first pod and rolls back (--on-failure rollback)"
cat >"$WORK/crash.yaml" <<'EOF'
spec:
  containers:
    - name: redis
      command: ["sh", "-c", "echo 'sts-safe smoke: this release exits 1' >&2; exit 1"]
EOF
note "--patch: $(tr '\n' ' ' <"$WORK/crash.yaml")"
plugin "$WORK/crash.json" canary "$STS" -n "$NS" --patch "$WORK/crash.yaml" --step-timeout "$STEP_TIMEOUT" --on-failure rollback --yes -o json
expect_rc 3 "the crash-looping canary"
same "outcome" "$WORK/crash.json" "d['outcome']" rolled-back
same "the pod that failed the gate" "$WORK/crash.json" "d['failure']['pod']" "$STS-2"
same "steps passed" "$WORK/crash.json" "len(d['steps'])" 0
note "gate: $(py "$WORK/crash.json" "d['failure']['reason']")"
assert_on_revision "$GOOD" "$NEW_IMAGE"

# ---------------------------------------------------------------- 4. never-Ready release
step 4 "a release whose readiness probe fails: stops at the first pod (pause), then kubectl sts-safe rollback"
cat >"$WORK/unready.yaml" <<'EOF'
spec:
  containers:
    - name: redis
      readinessProbe:
        exec:
          command: ["sh", "-c", "exit 1"]
EOF
note "--patch: $(tr '\n' ' ' <"$WORK/unready.yaml")"
plugin "$WORK/unready.json" canary "$STS" -n "$NS" --patch "$WORK/unready.yaml" --step-timeout "$UNREADY_TIMEOUT" --yes -o json
expect_rc 3 "the never-Ready canary"
same "outcome" "$WORK/unready.json" "d['outcome']" failed
same "the pod that failed the gate" "$WORK/unready.json" "d['failure']['pod']" "$STS-2"
same "partition left in place (only $STS-2 exposed)" "$WORK/unready.json" "d['partition']" 2
note "gate: $(py "$WORK/unready.json" "d['failure']['reason']")"
get_json pod "$STS-2" >"$WORK/pod2.json"
check "$STS-2 is Running but not Ready" "$WORK/pod2.json" \
  "d['status']['phase'] == 'Running' and not any(c['type'] == 'Ready' and c['status'] == 'True' for c in d['status']['conditions'])"
plugin "$WORK/rollback.json" rollback "$STS" -n "$NS" --timeout "$STEP_TIMEOUT" --yes -o json
expect_rc 0 "the rollback"
same "stuck pods the rollback replaced" "$WORK/rollback.json" "d['plan']['deletePods']" "[\"$STS-2\"]"
same "restored revision" "$WORK/rollback.json" "d['plan']['restoreRevision']" "$GOOD"
assert_on_revision "$GOOD" "$NEW_IMAGE"

# ---------------------------------------------------------------- 5. scale with the PVC preview
# scale_to N OUT: the preview (text, then JSON to $WORK/preview.json), then the run.
scale_to() {
  local n=$1
  plugin "$WORK/preview.txt" scale "$STS" -n "$NS" --replicas "$n" --dry-run
  expect_rc 0 "the scale preview"
  plugin "$WORK/preview.json" scale "$STS" -n "$NS" --replicas "$n" --dry-run -o json
  expect_rc 0 "the scale preview (-o json)"
}
scale_run() {
  local n=$1
  plugin "$WORK/scale.json" scale "$STS" -n "$NS" --replicas "$n" --step-timeout "$STEP_TIMEOUT" --yes -o json
  expect_rc 0 "scale to $n"
  same "replicas (report)" "$WORK/scale.json" "d['replicas']" "$n"
  # (the report's readyReplicas is the StatefulSet's status of that moment, which the
  # controller may not have brought down yet after a scale-down: ask the pods)
  plugin "$WORK/scaled.json" status "$STS" -n "$NS" -o json
  expect_rc 0 "status"
  check "pods $STS-0 … $STS-$((n - 1)), every one Running/Ready" "$WORK/scaled.json" \
    "[o['pod'] for o in d['ordinals']] == ['$STS-%d' % i for i in range($n)] and all(o['ready'] and o['phase'] == 'Running' for o in d['ordinals'])"
}
pvc_names() {
  get_json pvc >"$WORK/pvcs.json"
  py "$WORK/pvcs.json" "' '.join(sorted(p['metadata']['name'] for p in d['items'] if not p['metadata'].get('deletionTimestamp')))"
}

step 5a "scale 3 → 5: the preview names the PVCs to be created"
scale_to 5
same "new pods and the fate of their PVCs" "$WORK/preview.json" \
  "[(p['pod'], [(v['name'], v['action'], v['storageClass']) for v in p['pvcs']]) for p in d['pods']]" \
  "[[\"$STS-3\", [[\"data-$STS-3\", \"created\", \"$CLASS\"]]], [\"$STS-4\", [[\"data-$STS-4\", \"created\", \"$CLASS\"]]]]"
check "no errors in the plan" "$WORK/preview.json" "d['errors'] == []"
scale_run 5
equal "PVCs (kubectl get pvc)" "$(pvc_names)" "data-$STS-0 data-$STS-1 data-$STS-2 data-$STS-3 data-$STS-4"
check "all 5 PVCs Bound" "$WORK/pvcs.json" "all(p['status']['phase'] == 'Bound' for p in d['items'])"

step 5b "scale 5 → 3: the PVCs of the removed pods are kept"
scale_to 3
same "removed pods and the fate of their PVCs" "$WORK/preview.json" \
  "[(p['pod'], [(v['name'], v['action']) for v in p['pvcs']]) for p in d['pods']]" \
  "[[\"$STS-4\", [[\"data-$STS-4\", \"kept\"]]], [\"$STS-3\", [[\"data-$STS-3\", \"kept\"]]]]"
scale_run 3
same "PVCs left behind (report)" "$WORK/scale.json" "sorted(o['name'] for o in d['orphanPvcs'])" "[\"data-$STS-3\", \"data-$STS-4\"]"

step 5c "scale 3 → 4: the preview names the PVC reattached with its old data"
scale_to 4
same "new pod and the fate of its PVC" "$WORK/preview.json" \
  "[(p['pod'], [(v['name'], v['action'], v['phase']) for v in p['pvcs']]) for p in d['pods']]" \
  "[[\"$STS-3\", [[\"data-$STS-3\", \"reattached\", \"Bound\"]]]]"
check "a warning names the reattached PVC" "$WORK/preview.json" "any('data-$STS-3' in w for w in d['warnings'])"
get_json pvc "data-$STS-3" >"$WORK/pvc3.json"
PVC3_UID=$(py "$WORK/pvc3.json" "d['metadata']['uid']")
scale_run 4
get_json pvc "data-$STS-3" >"$WORK/pvc3.json"
same "data-$STS-3 is the same claim as before (uid)" "$WORK/pvc3.json" "d['metadata']['uid']" "$PVC3_UID"
get_json pod "$STS-3" >"$WORK/pod3.json"
check "$STS-3 mounts data-$STS-3" "$WORK/pod3.json" \
  "any((v.get('persistentVolumeClaim') or {}).get('claimName') == 'data-$STS-3' for v in d['spec']['volumes'])"

# ---------------------------------------------------------------- 6. prune the orphans
step 6 "prune-pvcs: deletes exactly the orphan data-$STS-4, never a live claim"
plugin "$WORK/prune-plan.txt" prune-pvcs "$STS" -n "$NS" --dry-run
expect_rc 0 "the prune plan"
plugin "$WORK/prune-plan.json" prune-pvcs "$STS" -n "$NS" --dry-run -o json
expect_rc 0 "the prune plan (-o json)"
same "planned deletions" "$WORK/prune-plan.json" "[p['name'] for p in d['pvcs']]" "[\"data-$STS-4\"]"
plugin "$WORK/prune.json" prune-pvcs "$STS" -n "$NS" --yes -o json
expect_rc 0 "prune-pvcs"
same "deleted" "$WORK/prune.json" "[(r['name'], r['result']) for r in d['results']]" "[[\"data-$STS-4\", \"deleted\"]]"
same "summary" "$WORK/prune.json" "[d['summary']['deleted'], d['summary']['failed'], d['summary']['held']]" "[1, 0, 0]"
deadline=$((SECONDS + $(seconds "$STEP_TIMEOUT")))
while k -n "$NS" get pvc "data-$STS-4" >/dev/null 2>&1; do
  [ "$SECONDS" -lt "$deadline" ] || fail "data-$STS-4 still exists $STEP_TIMEOUT after its delete"
  sleep 1
done
equal "PVCs left (kubectl get pvc)" "$(pvc_names)" "data-$STS-0 data-$STS-1 data-$STS-2 data-$STS-3"
plugin "$WORK/final.json" status "$STS" -n "$NS" -o json
expect_rc 0 "status"
check "4 pods Ready on $GOOD, no orphan PVC" "$WORK/final.json" \
  "d['replicas']['ready'] == 4 and all(o['ready'] and o['revisionHash'] == '$GOOD' for o in d['ordinals']) and d['orphanPvcs'] == []"
plugin "$WORK/final.txt" status "$STS" -n "$NS"

STEP="cleanup"
