#!/usr/bin/env bash
# Installs the local control plane's dependencies and builds kube-apiserver and
# kube-controller-manager v1.20.2 from Debian's source package, once, into a cache
# outside the repo. Idempotent: a second run with the binaries cached does nothing.
set -euo pipefail

K8S_VERSION=v1.20.2
CACHE_ROOT=${STS_SAFE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sts-safe}
BIN_DIR="$CACHE_ROOT/k8s-$K8S_VERSION"
APT_PACKAGES=(etcd-server openssl golang-go rsync golang-github-modern-go-reflect2-dev dpkg-dev curl procps)

log() { echo "k8s-build: $*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing_packages() {
  local p
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}

# Adds deb-src entries that mirror the machine's own Debian deb entries (no host hard-coded).
ensure_deb_src() {
  local src=/etc/apt/sources.list.d/debian.sources out=/etc/apt/sources.list.d/sts-safe-deb-src.sources
  [ -f "$out" ] && return 1
  if [ -f "$src" ]; then
    as_root sh -c "sed -n '/^Types:/,/^\$/p' '$src' | sed 's/^Types: .*/Types: deb-src/' > '$out'"
  elif [ -f /etc/apt/sources.list ]; then
    as_root sh -c "grep -E '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' > /etc/apt/sources.list.d/sts-safe-deb-src.list"
  fi
  return 0
}

install_packages() {
  local need
  need=$(missing_packages)
  local added_src=0
  ensure_deb_src && added_src=1
  if [ -n "$need" ] || [ "$added_src" = 1 ] || [ "${1:-}" = update ]; then
    log "apt-get update"
    as_root apt-get update -qq >/dev/null
  fi
  if [ -n "$need" ]; then
    log "installing: $need"
    # shellcheck disable=SC2086
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
  fi
}

# Debian's golang-go installs its Go under /usr/lib/go-1.NN; /usr/lib/go points at it.
debian_go_dir() {
  local d
  for d in /usr/lib/go/bin /usr/lib/go-1.*/bin; do
    [ -x "$d/go" ] && { echo "$d"; return 0; }
  done
  log "Debian's Go (package golang-go) not found"; return 1
}

build() {
  if [ -x "$BIN_DIR/kube-apiserver" ] && [ -x "$BIN_DIR/kube-controller-manager" ]; then
    return 0
  fi
  install_packages update
  local work="$CACHE_ROOT/build-$K8S_VERSION"
  rm -rf "$work"; mkdir -p "$work"
  log "fetching Debian source package kubernetes"
  (cd "$work" && apt-get source --download-only -qq kubernetes >/dev/null)
  local dsc
  dsc=$(ls "$work"/kubernetes_*.dsc | head -n1)
  (cd "$work" && dpkg-source --no-check -x "$dsc" src >/dev/null)
  local tree="$work/src"
  log "replacing vendored modern-go/reflect2 with Debian's v1.0.2 (v1.0.1 crashes under Go >= 1.18)"
  local reflect2
  reflect2=$(dpkg -L golang-github-modern-go-reflect2-dev | grep -E '/github.com/modern-go/reflect2$' | head -n1)
  rm -rf "$tree/vendor/github.com/modern-go/reflect2"
  cp -r "$reflect2" "$tree/vendor/github.com/modern-go/reflect2"
  rm -f "$tree/vendor/github.com/modern-go/reflect2/go.mod"
  mkdir -p "$work/.go/src/k8s.io"
  ln -sfn "$tree" "$work/.go/src/k8s.io/kubernetes"
  log "building kube-apiserver and kube-controller-manager (several minutes)"
  (
    cd "$work/.go/src/k8s.io/kubernetes"
    export GOPATH="$work/.go" GO111MODULE=off CGO_ENABLED=0 GOCACHE="$work/.gocache" GOFLAGS=-mod=vendor
    export KUBE_GIT_VERSION="$K8S_VERSION" KUBE_GIT_TREE_STATE=clean
    # 1.20's GOPATH build is meant for the Go of its day: use Debian's own Go explicitly,
    # never a newer Go that may come first on PATH (and never let it fetch a toolchain).
    export PATH="$(debian_go_dir):$PATH" GOTOOLCHAIN=local
    log "using $(go version)"
    make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" >"$work/build.log" 2>&1
  ) || { tail -n 40 "$work/build.log" >&2; exit 1; }
  mkdir -p "$BIN_DIR.tmp"
  cp "$tree/_output/bin/kube-apiserver" "$tree/_output/bin/kube-controller-manager" "$BIN_DIR.tmp/"
  rm -rf "$BIN_DIR"; mv "$BIN_DIR.tmp" "$BIN_DIR"
  rm -rf "$work"
  log "cached in $BIN_DIR"
}

# Tests and the demo drive the cluster with kubectl too; Debian ships one (1.20).
ensure_kubectl() {
  command -v kubectl >/dev/null 2>&1 && return 0
  log "kubectl not found: installing Debian's kubernetes-client"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends kubernetes-client >/dev/null
}

install_packages
ensure_kubectl
build
echo "$BIN_DIR"
