#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager and kube-scheduler of a current
# Kubernetes release, and the etcd server that release is tested with, from their
# published Go modules (scripts/k8s/go.mod, scripts/k8s/etcd/go.mod) with the machine's
# Go, once, into a cache outside the repo. Idempotent: a second run with the binaries
# cached builds nothing. Needs Go >= the go line of scripts/k8s/go.mod and a Go module
# proxy (GOPROXY) on a fresh machine; no git, no Docker, no cgo.
#
# Usage: scripts/k8s-build-current.sh [pin]
#   (none)  build if needed; the last stdout line is the bin dir, progress on stderr
#   pin     rewrite scripts/k8s/go.mod and scripts/k8s/etcd/go.mod (+ go.sum) for the
#           versions below: after changing them, run this, check and commit the result
#
# Environment: STS_SAFE_CACHE (cache root, as for k8s-build.sh), GO (go binary to use),
# SOURCE_DATE_EPOCH (the binaries' buildDate; default: now), GOPROXY/GOMODCACHE/GOCACHE
# as usual.
set -euo pipefail

K8S_CURRENT_VERSION=v1.37.2 # k8s.io/kubernetes; the staging modules follow as v0.37.2
ETCD_VERSION=v3.7.0         # hack/lib/etcd.sh ETCD_VERSION of that Kubernetes release

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MOD_DIR=$SCRIPT_DIR/k8s
ETCD_MOD_DIR=$MOD_DIR/etcd
CACHE_ROOT=${STS_SAFE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sts-safe}
BIN_DIR=$CACHE_ROOT/k8s-$K8S_CURRENT_VERSION
BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler)
K8S_CMDS=(kube-apiserver kube-controller-manager kube-scheduler)

log() { echo "k8s-build-current: $*" >&2; }
die() { echo "k8s-build-current: error: $*" >&2; exit 1; }

[[ $K8S_CURRENT_VERSION =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] || die "K8S_CURRENT_VERSION=$K8S_CURRENT_VERSION is not v1.MINOR.PATCH"
K8S_MINOR=${BASH_REMATCH[1]}
STAGING_VERSION=v0.${BASH_REMATCH[1]}.${BASH_REMATCH[2]}

# Never let go fetch another toolchain; never stamp the sts-safe repo's git state into
# the binaries; never change go.mod/go.sum while building.
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false"

# What the cached binaries were built from (written last, checked on every run).
stamp() { echo "kubernetes=$K8S_CURRENT_VERSION etcd=$ETCD_VERSION"; }

cached() {
  local b
  for b in "${BINARIES[@]}"; do [ -x "$BIN_DIR/$b" ] || return 1; done
  [ "$(cat "$BIN_DIR/VERSIONS" 2>/dev/null | head -n1)" = "$(stamp)" ]
}

# The Go to use: $GO, else the first `go` on PATH or /usr/local/go/bin/go that is at
# least the version scripts/k8s/go.mod asks for (Debian's golang-go may be older).
find_go() {
  local want g v
  want=$(awk '$1 == "go" { print $2; exit }' "$MOD_DIR/go.mod")
  for g in ${GO:-} "$(command -v go || true)" /usr/local/go/bin/go; do
    [ -n "$g" ] && [ -x "$g" ] || continue
    v=$("$g" env GOVERSION 2>/dev/null) || continue
    v=${v#go}
    if [ "$(printf '%s\n%s\n' "$want" "$v" | sort -V | head -n1)" = "$want" ]; then
      echo "$g"
      return 0
    fi
    log "skipping $g (go$v < go$want)"
  done
  die "no Go >= $want found (set GO=/path/to/go)"
}

# The k8s.io modules that k8s.io/kubernetes requires at v0.0.0 (its ./staging replaces).
staging_modules() {
  local gomod
  gomod=$(cd "$MOD_DIR" && "$GO" mod download -json "k8s.io/kubernetes@$K8S_CURRENT_VERSION" |
    sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
  [ -f "$gomod" ] || die "go.mod of k8s.io/kubernetes@$K8S_CURRENT_VERSION not found"
  awk '/^require \(/ { r = 1; next } r && /^\)/ { r = 0 } r && $1 ~ /^k8s\.io\// && $2 == "v0.0.0" { print $1 }' "$gomod"
}

# Fails unless the committed go.mod files are those `pin` would write.
check_pins() {
  local m got want=() bad=0
  got=$(cd "$MOD_DIR" && "$GO" list -m -f '{{.Version}}' k8s.io/kubernetes)
  [ "$got" = "$K8S_CURRENT_VERSION" ] || { log "scripts/k8s/go.mod has k8s.io/kubernetes $got"; bad=1; }
  mapfile -t want < <(staging_modules)
  [ "${#want[@]}" -gt 0 ] || die "no staging modules found in k8s.io/kubernetes@$K8S_CURRENT_VERSION's go.mod"
  for m in "${want[@]}"; do
    got=$(cd "$MOD_DIR" && "$GO" list -m -f '{{with .Replace}}{{.Path}} {{.Version}}{{end}}' "$m")
    [ "$got" = "$m $STAGING_VERSION" ] || { log "scripts/k8s/go.mod: $m is not replaced by $m $STAGING_VERSION (got '$got')"; bad=1; }
  done
  got=$(cd "$ETCD_MOD_DIR" && "$GO" list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
  [ "$got" = "$ETCD_VERSION" ] || { log "scripts/k8s/etcd/go.mod has go.etcd.io/etcd/server/v3 $got"; bad=1; }
  [ "$bad" = 0 ] || die "go.mod files do not match K8S_CURRENT_VERSION=$K8S_CURRENT_VERSION ETCD_VERSION=$ETCD_VERSION; run: $0 pin"
}

cmd_pin() {
  local m
  local -a mods
  GO=$(find_go)
  export GOFLAGS=-buildvcs=false
  mapfile -t mods < <(staging_modules)
  [ "${#mods[@]}" -gt 0 ] || die "no staging modules found"
  log "pinning k8s.io/kubernetes $K8S_CURRENT_VERSION and ${#mods[@]} staging modules at $STAGING_VERSION"
  (
    cd "$MOD_DIR"
    # drop every replace (block or line), then add exactly the release's list
    awk '/^replace \($/ { r = 1; next } r && /^\)$/ { r = 0; next } !r && !/^replace / { print }' \
      go.mod >go.mod.tmp
    {
      echo "replace ("
      for m in "${mods[@]}"; do printf '\t%s => %s %s\n' "$m" "$m" "$STAGING_VERSION"; done
      echo ")"
    } >>go.mod.tmp
    mv go.mod.tmp go.mod
    "$GO" mod edit -require="k8s.io/kubernetes@$K8S_CURRENT_VERSION" "${mods[@]/#/-droprequire=}"
    "$GO" mod tidy
  )
  log "pinning go.etcd.io/etcd/server/v3 $ETCD_VERSION"
  (cd "$ETCD_MOD_DIR" && "$GO" mod edit -require="go.etcd.io/etcd/server/v3@$ETCD_VERSION" && "$GO" mod tidy)
  check_pins
  log "done; review and commit scripts/k8s/go.mod, go.sum, etcd/go.mod, etcd/go.sum"
}

build() {
  cached && return 0
  GO=$(find_go)
  log "using $("$GO" version) ($GO)"
  check_pins
  mkdir -p "$CACHE_ROOT"
  local work
  work=$(mktemp -d "$CACHE_ROOT/k8s-$K8S_CURRENT_VERSION.build.XXXXXX")
  # shellcheck disable=SC2064
  trap "rm -rf '$work'" EXIT
  mkdir "$work/bin"

  local build_date v pkg ldflags=""
  build_date=$(date -u ${SOURCE_DATE_EPOCH:+--date=@"$SOURCE_DATE_EPOCH"} +%Y-%m-%dT%H:%M:%SZ)
  # What hack/lib/version.sh sets (for both packages, as upstream does). gitCommit is not
  # in the module zip: set empty rather than left at its "$Format:%H$" placeholder.
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    for v in "gitVersion=$K8S_CURRENT_VERSION" gitMajor=1 "gitMinor=$K8S_MINOR" \
      gitTreeState=clean gitCommit= "buildDate=$build_date"; do
      ldflags+=" -X '$pkg.$v'"
    done
  done

  log "building ${K8S_CMDS[*]} $K8S_CURRENT_VERSION (modules through $("$GO" env GOPROXY); a fresh build takes many minutes)"
  if ! (cd "$MOD_DIR" && "$GO" build -trimpath -ldflags="-s -w$ldflags" -o "$work/bin/" \
    "${K8S_CMDS[@]/#/./cmd/}") >"$work/build.log" 2>&1; then
    tail -n 40 "$work/build.log" >&2
    die "building Kubernetes $K8S_CURRENT_VERSION failed"
  fi
  log "building etcd $ETCD_VERSION"
  if ! (cd "$ETCD_MOD_DIR" && "$GO" build -trimpath -ldflags="-s -w" -o "$work/bin/etcd" .) \
    >"$work/build.log" 2>&1; then
    tail -n 40 "$work/build.log" >&2
    die "building etcd $ETCD_VERSION failed"
  fi
  for v in "${BINARIES[@]}"; do [ -x "$work/bin/$v" ] || die "$v missing after go build"; done
  { stamp; "$GO" version; } >"$work/bin/VERSIONS"

  # Swap in the finished dir: a reader sees the old complete dir or the new one.
  if [ -e "$BIN_DIR" ]; then mv "$BIN_DIR" "$work/old"; fi
  mv "$work/bin" "$BIN_DIR"
  rm -rf "$work"
  trap - EXIT
  log "cached in $BIN_DIR"
}

case ${1:-} in
  "")
    mkdir -p "$CACHE_ROOT"
    # One build at a time per version (fd 8: cluster.sh uses 9 for its own lock).
    exec 8>>"$CACHE_ROOT/k8s-$K8S_CURRENT_VERSION.lock"
    flock 8
    build
    echo "$BIN_DIR"
    ;;
  pin) cmd_pin ;;
  *)
    echo "usage: $0 [pin]" >&2
    exit 2
    ;;
esac
