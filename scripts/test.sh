#!/usr/bin/env bash
# `make test`, the README's test command (and CI's, through .ci/run):
#
#   1. make lint; every test binary built once, before the clusters take the cores
#   2. the current server (v1.37.2): cluster up → every test but the fault suite and the
#      floor's own tests → the smoke suite (scripts/smoke.sh) on this cluster
#   3. then, side by side:
#        - the fault suite on v1.37.2, serially (it restarts that API server);
#        - the floor (v1.20.2): its own cluster up → every end-to-end test but the fault
#          suite and the current server's behaviours (`current::`), plus the fault suite's
#          least-privilege family → its cluster down;
#        - `make dist` (nice 19) for linux-amd64 (TEST_DIST_TARGETS: all four with
#          "linux-amd64 linux-arm64 darwin-amd64 darwin-arm64"): the archive, its generated
#          krew manifest, and tests/dist.rs on them (TEST_DIST=0 leaves it out), in
#          $DIST_TARGET_DIR (default ~/.cache/sts-safe/dist-target: cached like the
#          control-plane builds).
#      They share nothing: each cluster has its own ports and state directory, and the
#      restart family waits only for plugin processes on its own cluster.
#   4. the v1.37.2 cluster down (always); the exit status of the first failure.
#
# The floor's and dist's output go to target/test-logs/ and are printed when they end.
set -uo pipefail
cd "$(dirname "$0")/.."

CURRENT=${K8S_CURRENT:-v1.37.2}
FLOOR=${K8S_FLOOR:-v1.20.2}
TEST_DIST=${TEST_DIST:-1}
CACHE=${STS_SAFE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sts-safe}
DIST_TARGET_DIR=${DIST_TARGET_DIR:-$CACHE/dist-target}
# One platform by default: a cold release build of one target takes about 10 minutes on
# 2 cores (LTO), four would take 40 and push make test far past its budget. The whole of
# `make dist` (all four) runs on its own and in the release workflow.
TEST_DIST_TARGETS=${TEST_DIST_TARGETS:-linux-amd64}
LOGS=target/test-logs
# Extra cargo flags (e.g. --release), as `make test CARGO_TEST_FLAGS=…`.
read -r -a CARGO_FLAGS <<<"${CARGO_TEST_FLAGS:-}"
mkdir -p "$LOGS"
started=$SECONDS

phase() { printf '\n== [%3d s] %s\n' $((SECONDS - started)) "$*"; }

phase "lint"
make --no-print-directory lint || exit $?

phase "build every test binary"
cargo test --workspace "${CARGO_FLAGS[@]}" --no-run || exit $?
# The end-to-end binary, run directly below so that two suites never wait on cargo's lock.
e2e_bin=$(cargo test --test e2e "${CARGO_FLAGS[@]}" --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "e2e" and m.get("executable"):
        print(m["executable"])')
[ -x "$e2e_bin" ] || { echo "error: cannot find the e2e test binary"; exit 1; }

# The floor's run: its cluster up, its subset, its cluster down.
floor() {
  export K8S_VERSION=$FLOOR STS_SAFE_EXPECT_SERVER=$FLOOR
  local line s=0
  line=$(bash scripts/cluster.sh up | tail -n1) || return 1
  eval "$line"
  echo "== tests against kube-apiserver $FLOOR (compat)"
  "$e2e_bin" --skip faults:: --skip current:: || s=$?
  if [ $s -eq 0 ]; then "$e2e_bin" faults::privilege --test-threads 1 || s=$?; fi
  bash scripts/cluster.sh down
  return $s
}

export K8S_VERSION=$CURRENT STS_SAFE_EXPECT_SERVER=$CURRENT
phase "cluster $CURRENT up"
line=$(bash scripts/cluster.sh up | tail -n1) || exit 1
current_env=$line
eval "$current_env"
status=0
phase "tests against kube-apiserver $CURRENT (full)"
cargo test --workspace "${CARGO_FLAGS[@]}" -- --skip faults:: --skip floor:: || status=$?
if [ $status -eq 0 ]; then
  phase "smoke suite against the local $CURRENT cluster"
  bash scripts/smoke.sh || status=$?
fi
if [ $status -eq 0 ]; then
  phase "side by side: faults on $CURRENT, the $FLOOR floor, make dist"
  (floor) >"$LOGS/floor.log" 2>&1 &
  floor_pid=$!
  if [ "$TEST_DIST" = 1 ]; then
    # Its own target directory, kept outside the repo like the control-plane builds:
    # a re-run rebuilds only this crate for the four targets.
    (CARGO_TARGET_DIR=$DIST_TARGET_DIR DIST_TARGETS=$TEST_DIST_TARGETS nice -n 19 bash scripts/dist.sh) >"$LOGS/dist.log" 2>&1 &
    dist_pid=$!
  fi
  "$e2e_bin" faults:: --test-threads 1 || status=$?
  phase "faults done (status $status); waiting for the floor and dist"
  floor_status=0
  wait "$floor_pid" || floor_status=$?
  phase "the $FLOOR floor (status $floor_status): target/test-logs/floor.log"
  cat "$LOGS/floor.log"
  [ $status -ne 0 ] || status=$floor_status
  if [ "$TEST_DIST" = 1 ]; then
    dist_status=0
    wait "$dist_pid" || dist_status=$?
    phase "make dist (status $dist_status): target/test-logs/dist.log"
    cat "$LOGS/dist.log"
    [ $status -ne 0 ] || status=$dist_status
  fi
fi
eval "$current_env"
K8S_VERSION=$CURRENT bash scripts/cluster.sh down
phase "make test: exit $status"
exit $status
