# kubectl sts-safe — developer entry points. See README.md.
SHELL := /bin/bash
CLUSTER := bash scripts/cluster.sh
# The local cluster's versions: the current one (default of scripts/cluster.sh) and the
# compatibility floor. `make test` runs the whole suite on the first, a subset on the second.
K8S_CURRENT := v1.37.2
K8S_FLOOR := v1.20.2
# The version cluster-up, e2e, faults, demo and bench use (scripts/cluster.sh reads it).
K8S_VERSION ?= $(K8S_CURRENT)
export K8S_VERSION
CARGO_TEST_FLAGS ?=

.PHONY: build release test e2e unit lint cluster-up cluster-down demo bench faults install clean toolchain dist smoke

build:
	cargo build --workspace

release:
	cargo build --release

# Rust components (rustfmt, clippy) are part of the toolchain; add them if missing.
toolchain:
	@command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup)"; exit 1; }
	@cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
	@cargo clippy --version >/dev/null 2>&1 || rustup component add clippy

cluster-up:
	@$(CLUSTER) up

cluster-down:
	@$(CLUSTER) down

# fmt, clippy, and the layout's rules (imports point down, plan/ is pure, short files).
lint: toolchain
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo test --test architecture

unit: toolchain
	cargo test --workspace --lib --bins $(CARGO_TEST_FLAGS)

# The test command (scripts/test.sh): lint; the current server: every test but the fault
# suite and the floor's own tests (`floor::`, the force-delete path's 6-minute force
# detach), then the smoke suite; then side by side: the fault suite on the current server
# (serially, last: it restarts that API server), the 1.20 floor's subset on its own
# cluster (every end-to-end test but the fault suite and `current::`, plus the fault
# suite's least-privilege family), and `make dist` niced. Each cluster goes down after.
test: toolchain
	@bash scripts/test.sh

# One server version (K8S_VERSION): cluster up → tests (E2E_SET=full|compat) → cluster down.
# STS_SAFE_EXPECT_SERVER makes tests/e2e/server.rs fail if another server answers.
E2E_SET ?= full
e2e: toolchain
	@set -o pipefail; line=$$($(CLUSTER) up | tail -n1) || exit 1; eval "$$line"; \
	  export STS_SAFE_EXPECT_SERVER=$$K8S_VERSION; \
	  echo "== tests against kube-apiserver $$K8S_VERSION ($(E2E_SET))"; \
	  status=0; \
	  if [ "$(E2E_SET)" = full ]; then \
	    cargo test --workspace $(CARGO_TEST_FLAGS) -- --skip faults:: --skip floor:: || status=$$?; \
	    if [ $$status -eq 0 ]; then cargo test --test e2e $(CARGO_TEST_FLAGS) faults:: -- --test-threads 1 || status=$$?; fi; \
	  else \
	    cargo test --test e2e $(CARGO_TEST_FLAGS) -- --skip faults:: --skip current:: || status=$$?; \
	    if [ $$status -eq 0 ]; then cargo test --test e2e $(CARGO_TEST_FLAGS) faults::privilege -- --test-threads 1 || status=$$?; fi; \
	  fi; \
	  $(CLUSTER) down; \
	  exit $$status

demo: toolchain
	@bash scripts/demo.sh

bench: toolchain
	@bash scripts/bench.sh

faults: toolchain
	@set -o pipefail; line=$$($(CLUSTER) up | tail -n1) || exit 1; eval "$$line"; \
	  status=0; export STS_SAFE_FAULT_TRIALS=$${STS_SAFE_FAULT_TRIALS:-50}; \
	  cargo test --test e2e faults:: -- --test-threads 1 || status=$$?; \
	  $(CLUSTER) down; exit $$status

install: release
	install -m 0755 target/release/kubectl-sts_safe $${PREFIX:-/usr/local}/bin/kubectl-sts_safe
	install -m 0755 target/release/kubectl_complete-sts_safe $${PREFIX:-/usr/local}/bin/kubectl_complete-sts_safe

# Release archives for every platform of the krew manifest, their sha256 files and the
# generated manifest, in target/dist (scripts/dist.sh), then checked by tests/dist.rs.
dist: toolchain
	@bash scripts/dist.sh

# The main job against any cluster: make smoke KUBECONFIG=... (scripts/smoke.sh).
smoke: toolchain
	@bash scripts/smoke.sh

clean:
	cargo clean
