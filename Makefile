# kubectl sts-safe — developer entry points. See README.md.
SHELL := /bin/bash
CLUSTER := bash scripts/cluster.sh
KUBECONFIG_LOCAL := $(or $(STS_SAFE_CLUSTER_DIR),$(HOME)/.cache/sts-safe/cluster)/kubeconfig
CARGO_TEST_FLAGS ?=

.PHONY: build release test unit lint cluster-up cluster-down demo bench faults install clean toolchain

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

# The test command: cluster up → fmt, clippy, every test → cluster down (always),
# returning the tests' status. The fault-injection suite (short version: 5 kill trials,
# 3 API-server restarts) runs last and serially, because it restarts the API server.
test: toolchain
	@$(CLUSTER) up
	@status=0; \
	  export KUBECONFIG=$(KUBECONFIG_LOCAL); \
	  $(MAKE) --no-print-directory lint || status=$$?; \
	  if [ $$status -eq 0 ]; then cargo test --workspace $(CARGO_TEST_FLAGS) -- --skip faults:: || status=$$?; fi; \
	  if [ $$status -eq 0 ]; then cargo test --test e2e $(CARGO_TEST_FLAGS) faults:: -- --test-threads 1 || status=$$?; fi; \
	  $(CLUSTER) down; \
	  exit $$status

demo: toolchain
	@bash scripts/demo.sh

bench: toolchain
	@bash scripts/bench.sh

faults: toolchain
	@$(CLUSTER) up
	@status=0; export KUBECONFIG=$(KUBECONFIG_LOCAL) STS_SAFE_FAULT_TRIALS=$${STS_SAFE_FAULT_TRIALS:-50}; \
	  cargo test --test e2e faults:: -- --test-threads 1 || status=$$?; \
	  $(CLUSTER) down; exit $$status

install: release
	install -m 0755 target/release/kubectl-sts_safe $${PREFIX:-/usr/local}/bin/kubectl-sts_safe

clean:
	cargo clean
