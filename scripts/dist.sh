#!/usr/bin/env bash
# `make dist`: the release of the current Cargo.toml version, in $CARGO_TARGET_DIR/dist
# (default target/dist):
#
#   kubectl-sts_safe-v<version>-<os>-<arch>.tar.gz         kubectl-sts_safe,
#                                                           kubectl_complete-sts_safe and
#                                                           LICENSE at the archive's root
#   kubectl-sts_safe-v<version>-<os>-<arch>.tar.gz.sha256  its checksum, `sha256sum` format
#   sts-safe.yaml   the krew manifest: krew/sts-safe.yaml (the template) with this version,
#                   the URIs of these archives and their real checksums, one platform per
#                   archive built
#
# then checks them with tests/dist.rs (`cargo test --test dist`): the manifest passes
# krew's validation, each archive unpacks to exactly the manifest's files with the
# checksums given, the linux-amd64 binary runs and every binary is of its platform.
#
# Platforms (krew os-arch: Rust target; all four cross-linked by zig via cargo-zigbuild):
#   linux-amd64   x86_64-unknown-linux-musl    static: any Linux, glibc or musl (Alpine)
#   linux-arm64   aarch64-unknown-linux-musl   static
#   darwin-amd64  x86_64-apple-darwin          macOS 10.14 or later
#   darwin-arm64  aarch64-apple-darwin         macOS 11 or later, ad-hoc signed
# zig has no macOS SDK: the two system frameworks the binaries link (Security and
# CoreFoundation, for the system's trusted CA certificates through rustls-native-certs)
# are given to the linker as text stubs (.tbd, the format the SDK itself ships) written
# below, listing only the symbols the binaries use. See darwin_sdk().
#
# Installs what it needs, once: the four rustup targets, and zig + cargo-zigbuild (pinned
# versions, from PyPI) in a venv under $STS_SAFE_CACHE/dist-tools. Needs rustup, python3
# (with venv), GNU tar, gzip and sha256sum.
#
# Environment:
#   DIST_TARGETS       platforms to build, space or comma separated, e.g. "linux-amd64"
#                      (default: all four); the manifest lists exactly these
#   CARGO_TARGET_DIR   cargo's target directory (default ./target); output in its dist/
#   STS_SAFE_CACHE     cache root (default ${XDG_CACHE_HOME:-~/.cache}/sts-safe)
#   SOURCE_DATE_EPOCH  the archives' file times (default: the time of the last commit),
#                      so the same commit gives byte-identical archives
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

ZIG_VERSION=0.15.2
ZIGBUILD_VERSION=0.24.1
ALL_PLATFORMS=(linux-amd64 linux-arm64 darwin-amd64 darwin-arm64)
REQUIRED_BINS=(kubectl-sts_safe kubectl_complete-sts_safe)
PACKAGE=kubectl-sts-safe
TEMPLATE=krew/sts-safe.yaml

CACHE_ROOT=${STS_SAFE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sts-safe}
TOOLS=$CACHE_ROOT/dist-tools
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
case $TARGET_DIR in /*) ;; *) TARGET_DIR=$ROOT/$TARGET_DIR ;; esac
export CARGO_TARGET_DIR=$TARGET_DIR
DIST=$TARGET_DIR/dist

log() { printf '== dist: %s\n' "$*" >&2; }
die() { printf 'dist: %s\n' "$*" >&2; exit 1; }

triple_of() {
  case $1 in
    linux-amd64) echo x86_64-unknown-linux-musl ;;
    linux-arm64) echo aarch64-unknown-linux-musl ;;
    darwin-amd64) echo x86_64-apple-darwin ;;
    darwin-arm64) echo aarch64-apple-darwin ;;
    *) return 1 ;;
  esac
}

# ---- What to build -------------------------------------------------------------------

platforms=()
requested=${DIST_TARGETS:-${ALL_PLATFORMS[*]}}
for p in ${requested//,/ }; do
  triple_of "$p" >/dev/null || die "DIST_TARGETS: unknown platform '$p' (known: ${ALL_PLATFORMS[*]})"
done
for p in "${ALL_PLATFORMS[@]}"; do   # in the manifest's order, each once
  for q in ${requested//,/ }; do [ "$p" = "$q" ] && { platforms+=("$p"); break; }; done
done
[ ${#platforms[@]} -gt 0 ] || die "DIST_TARGETS names no platform"

command -v rustup >/dev/null || die "rustup not found: the cross targets are installed with rustup"
command -v python3 >/dev/null || die "python3 not found: zig and cargo-zigbuild come from PyPI"
tar --version 2>/dev/null | grep -q 'GNU tar' || die "GNU tar needed (deterministic archives: --sort, --mtime)"

metadata=$(cargo metadata --no-deps --format-version 1 --locked)
read -r VERSION BINS < <(python3 -c '
import json, sys
pkg = next(p for p in json.load(sys.stdin)["packages"] if p["name"] == sys.argv[1])
bins = sorted(t["name"] for t in pkg["targets"] if "bin" in t["kind"])
print(pkg["version"], " ".join(bins))' "$PACKAGE" <<<"$metadata")
read -r -a BINS <<<"$BINS"
for b in "${REQUIRED_BINS[@]}"; do
  [[ " ${BINS[*]} " == *" $b "* ]] ||
    die "Cargo.toml has no binary '$b' (has: ${BINS[*]:-none}); every archive ships ${REQUIRED_BINS[*]}"
done
[ ${#BINS[@]} -eq ${#REQUIRED_BINS[@]} ] ||
  die "Cargo.toml has binaries ${BINS[*]}; the archive layout (krew/sts-safe.yaml files) has ${REQUIRED_BINS[*]}"
[ -n "$VERSION" ] || die "no version of $PACKAGE in cargo metadata"
V=v$VERSION
EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
# Only for the archives: cargo would rebuild every crate whose build script (cc) watches it.
unset SOURCE_DATE_EPOCH

# ---- Tools ---------------------------------------------------------------------------

# zig and cargo-zigbuild, pinned, in a venv of their own, whose bin/ (with a `zig` link to
# the ziglang package's) goes first on PATH for the builds: cargo-zigbuild runs `zig` from
# PATH, else `python3 -m ziglang`, the venv's either way.
ensure_tools() {
  local want="ziglang==$ZIG_VERSION cargo-zigbuild==$ZIGBUILD_VERSION"
  mkdir -p "$CACHE_ROOT"
  exec 9>"$CACHE_ROOT/dist-tools.lock"
  flock 9
  if [ "$(cat "$TOOLS/.installed" 2>/dev/null)" != "$want" ]; then
    log "installing $want into $TOOLS"
    rm -rf "$TOOLS"
    python3 -m venv "$TOOLS"
    # shellcheck disable=SC2086
    "$TOOLS/bin/python" -m pip install --quiet --disable-pip-version-check $want
    local zig
    zig=$("$TOOLS/bin/python" -c 'import ziglang, os; print(os.path.join(os.path.dirname(ziglang.__file__), "zig"))')
    ln -sf "$zig" "$TOOLS/bin/zig"
    echo "$want" >"$TOOLS/.installed"
  fi
  exec 9>&-
  [ "$("$TOOLS/bin/zig" version)" = "$ZIG_VERSION" ] || die "$TOOLS/bin/zig is not zig $ZIG_VERSION"
  local installed missing=()
  installed=$(rustup target list --installed)
  for p in "${platforms[@]}"; do
    local t
    t=$(triple_of "$p")
    grep -qx "$t" <<<"$installed" || missing+=("$t")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "rustup target add ${missing[*]}"
    rustup target add "${missing[@]}"
  fi
}

# ---- macOS frameworks ----------------------------------------------------------------

# A stub SDK with the two frameworks the binaries link, as text-based stubs (.tbd v4):
# each names the framework's real install name, so the binary loads the system's own
# framework at run time, and lists only the symbols the binaries use, each in the
# framework that exports it (CF*: CoreFoundation, Sec*: Security, as the Rust -sys crates
# declare them). All are public API of macOS 10.14 or older, the binaries' minimum
# (SecTrustEvaluateWithError is 10.14's; the rest 10.9's or older). A symbol missing here
# fails the link ("undefined symbol"): never a broken binary. Prints the framework
# search path.
darwin_sdk() {
  local sdk=$TARGET_DIR/dist-sdk/System/Library/Frameworks
  mkdir -p "$sdk/CoreFoundation.framework" "$sdk/Security.framework"
  tbd "$sdk/CoreFoundation.framework/CoreFoundation.tbd" \
    /System/Library/Frameworks/CoreFoundation.framework/Versions/A/CoreFoundation 150 \
    _CFArrayCreate _CFArrayGetCount _CFArrayGetValueAtIndex _CFDataCreate \
    _CFDataGetBytePtr _CFDataGetLength _CFDateCreate _CFDictionaryGetValueIfPresent \
    _CFEqual _CFErrorCopyDescription _CFErrorGetCode _CFNumberGetValue _CFRelease \
    _CFRetain _CFStringCreateWithBytes _CFStringCreateWithBytesNoCopy _CFStringGetBytes \
    _CFStringGetCStringPtr _CFStringGetLength _kCFAbsoluteTimeIntervalSince1970 \
    _kCFAllocatorDefault _kCFAllocatorNull _kCFTypeArrayCallBacks
  tbd "$sdk/Security.framework/Security.tbd" \
    /System/Library/Frameworks/Security.framework/Versions/A/Security 1 \
    _SecCertificateCopyData _SecCertificateCopySubjectSummary \
    _SecCertificateCreateWithData _SecCopyErrorMessageString _SecPolicyCreateSSL \
    _SecTrustCreateWithCertificates _SecTrustEvaluateWithError \
    _SecTrustSetAnchorCertificates _SecTrustSetAnchorCertificatesOnly \
    _SecTrustSetOCSPResponse _SecTrustSetVerifyDate _SecTrustSettingsCopyCertificates \
    _SecTrustSettingsCopyTrustSettings
  echo "$sdk"
}

# tbd FILE INSTALL_NAME COMPATIBILITY_VERSION SYMBOL...
tbd() {
  local file=$1 name=$2 compat=$3
  shift 3
  local syms
  syms=$(printf '%s, ' "$@")
  cat >"$file" <<EOF
--- !tapi-tbd
tbd-version:     4
targets:         [ x86_64-macos, arm64-macos ]
install-name:    '$name'
compatibility-version: $compat
exports:
  - targets:     [ x86_64-macos, arm64-macos ]
    symbols:     [ ${syms%, } ]
...
EOF
}

# ---- Build and pack ------------------------------------------------------------------

declare -A BUILD_SECONDS
build() {
  local p=$1 t start flags
  t=$(triple_of "$p")
  # Paths in panic messages: the checkout and cargo's home, not this machine's.
  flags="--remap-path-prefix=$ROOT=/sts-safe --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo"
  # The oldest macOS each binary runs on, recorded in it (zig's default is its own,
  # newer, minimum): Rust's for arm64; for x86_64 10.14, that of the symbols the TLS
  # verifier uses (SecTrustEvaluateWithError), not Rust's 10.12.
  local macos=()
  case $p in
    darwin-amd64) macos=(MACOSX_DEPLOYMENT_TARGET=10.14) ;;
    darwin-arm64) macos=(MACOSX_DEPLOYMENT_TARGET=11.0) ;;
  esac
  case $p in darwin-*) flags+=" -C link-arg=-F$(darwin_sdk)" ;; esac
  local var
  var=CARGO_TARGET_$(tr 'a-z-' 'A-Z_' <<<"$t")_RUSTFLAGS
  log "building $p ($t)"
  case $p in darwin-*) log "(rustc warns that xcrun is missing: expected, zig links with the stub SDK)" ;; esac
  start=$SECONDS
  env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS -u MACOSX_DEPLOYMENT_TARGET "${macos[@]}" \
    "$var=$flags" PATH="$TOOLS/bin:$PATH" cargo zigbuild --release --locked --bins --target "$t"
  BUILD_SECONDS[$p]=$((SECONDS - start))
}

pack() {
  local p=$1 t stage archive
  t=$(triple_of "$p")
  stage=$TARGET_DIR/dist-stage/$p
  archive=kubectl-sts_safe-$V-$p.tar.gz
  rm -rf "$stage"
  mkdir -p "$stage"
  for b in "${BINS[@]}"; do
    [ -f "$TARGET_DIR/$t/release/$b" ] || die "$TARGET_DIR/$t/release/$b was not built"
    install -m 0755 "$TARGET_DIR/$t/release/$b" "$stage/$b"
  done
  install -m 0644 LICENSE "$stage/LICENSE"
  local names
  names=$(cd "$stage" && LC_ALL=C ls -A)
  # shellcheck disable=SC2086
  tar --create --format=ustar --sort=name --mtime="@$EPOCH" --owner=0 --group=0 \
    --numeric-owner --directory "$stage" $names | gzip -9 -n >"$DIST/$archive"
  (cd "$DIST" && sha256sum "$archive" >"$archive.sha256")
  rm -rf "$stage"
}

# The template with this version, these archives' URIs and checksums, only the built
# platforms, and a header that says what it is.
manifest() {
  python3 - "$TEMPLATE" "$DIST/sts-safe.yaml" "$V" "$DIST" "${BINS[*]}" "${platforms[@]}" <<'EOF'
import re, sys
template, out, version, dist, bins, *platforms = sys.argv[1:]
lines = open(template).read().splitlines()
start = next(i for i, l in enumerate(lines) if l.startswith("apiVersion:"))
end = next(i for i, l in enumerate(lines) if l == "  platforms:")
old = next(re.fullmatch(r"  version: (\S+)", l).group(1) for l in lines if re.fullmatch(r"  version: \S+", l))
base = next(re.search(r"uri: (https://\S+/releases/download/)", l).group(1) for l in lines if "uri: " in l)
body = [l.replace(old, version) for l in lines[start:end]]
head = [
    "# krew plugin manifest of kubectl sts-safe " + version + ", generated by `make dist`",
    "# (scripts/dist.sh) from krew/sts-safe.yaml: the checksums are those of the archives",
    "# published with this file. Install: kubectl krew install --manifest=sts-safe.yaml",
]
plats = ["  platforms:"]
for p in platforms:
    os_, arch = p.split("-")
    archive = "kubectl-sts_safe-%s-%s.tar.gz" % (version, p)
    sha = open("%s/%s.sha256" % (dist, archive)).read().split()[0]
    plats += [
        "    - selector:",
        "        matchLabels:",
        "          os: " + os_,
        "          arch: " + arch,
        "      uri: %s%s/%s" % (base, version, archive),
        "      sha256: " + sha,
        "      bin: kubectl-sts_safe",
        "      files:",
    ]
    for f in bins.split() + ["LICENSE"]:
        plats += ["        - from: " + f, "          to: ."]
text = "\n".join(head + body + plats) + "\n"
if "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" in text or "placeholder" in text.lower():
    sys.exit("dist: the generated manifest still has a placeholder")
open(out, "w").write(text)
EOF
}

# ---- Main ----------------------------------------------------------------------------

log "kubectl-sts-safe $V: ${platforms[*]} (binaries: ${BINS[*]}) into $DIST"
ensure_tools
rm -rf "$DIST"
mkdir -p "$DIST"
for p in "${platforms[@]}"; do
  build "$p"
done
for p in "${platforms[@]}"; do
  pack "$p"
done
manifest

log "checking the release (tests/dist.rs)"
STS_SAFE_DIST_DIR=$DIST STS_SAFE_DIST_PLATFORMS="${platforms[*]}" \
  cargo test --locked --test dist -- --test-threads 1 --show-output

log "done: $DIST"
for p in "${platforms[@]}"; do
  a=kubectl-sts_safe-$V-$p.tar.gz
  printf '  %-14s build %4ss  %s  %s bytes\n' "$p" "${BUILD_SECONDS[$p]}" "$a" "$(stat -c %s "$DIST/$a")" >&2
done
printf '  %s\n' "$DIST/sts-safe.yaml" >&2
