# oversqlite — build, test, demo and benchmark entry points.
#
# Every workspace package is built on its own (`cargo build -p NAME`): the extension
# turns on rusqlite's `loadable_extension` feature, which must never be unified with the
# `bundled` SQLite used by the server, the test host and the core/engine unit tests.

SHELL := /bin/bash
CARGO ?= cargo
PYTHON ?= /usr/bin/python3
EXT_DEBUG := target/debug/liboversqlite.so
EXT_RELEASE := target/release/liboversqlite.so
SERVER_DEBUG := target/debug/oversqlite-server
SERVER_RELEASE := target/release/oversqlite-server

# Debian packages the build and the suites need on a fresh machine (libclang for
# sqlite-loadable's bindgen, the sqlite3 shell and Debian's python3 for the suites,
# python3-venv for the dist tools and the packaging test's fresh venv).
APT_PACKAGES := libclang-dev sqlite3 python3 python3-venv make g++

# Release artifacts (make dist): the binaries are built for glibc DIST_GLIBC with
# cargo-zigbuild and zig from the ziglang package; the wheel with hatchling, checked
# with auditwheel. Their venv lives outside the repository on purpose: zig reports its
# include directories relative to the working directory when they lie below it, and
# bindgen (sqlite-loadable's build script) runs in another directory, where such paths
# point nowhere.
DIST_TOOLS ?= $(HOME)/.cache/oversqlite/dist-tools
DIST_GLIBC := 2.17
ZIGBUILD_VERSION := 0.24.1
DIST_PY_PACKAGES := ziglang==0.17.1 hatchling==1.33.0 auditwheel==6.8.2
export DIST_TOOLS DIST_GLIBC

.PHONY: lint all deps build build-test release server cli example demo bench test test-rust test-python test-shell test-node test-tools test-packaging node-deps dist dist-tools clean

all: build

## deps: install the Debian packages that are missing (CI machines start fresh).
deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

## build: the extension, debug profile (target/debug/liboversqlite.so).
build: deps
	$(CARGO) build -p oversqlite

## build-test: the debug extension with fault injection (cargo feature `test-faults`),
## which the test suites load: OVERSQLITE_TEST_FAULT drives the crash and panic-guard
## tests. Every other build (build, release, dist) ignores the variable.
build-test: deps
	$(CARGO) build -p oversqlite --features test-faults

## release: the optimised extension and server (used by the demo and the benchmark).
release: deps
	$(CARGO) build --release -p oversqlite
	$(CARGO) build --release -p oversqlite-server

## server: the debug oversqlite-server binary.
server: deps
	$(CARGO) build -p oversqlite-server

## cli: the debug `oversqlite` command-line tool (target/debug/oversqlite).
cli: deps
	$(CARGO) build -p oversqlite-cli

## example: a first run — local changes captured by the extension, from the sqlite3 shell.
example: build
	@rm -f target/example.db
	sqlite3 target/example.db < sql/examples/local_capture.sql

## demo: two devices of one user syncing through oversqlite-server, told step by step.
demo: release
	bash scripts/demo.sh

## bench: capture/push/pull/hydrate and busy-writer figures; prints a table, writes bench/results.md.
bench: release
	$(CARGO) run --release -p oversqlite-bench -- --extension $(EXT_RELEASE) --server-bin $(SERVER_RELEASE)

## dist-tools: cargo-zigbuild (cached in ~/.cargo/bin, found by cargo) and the DIST_TOOLS venv, when missing.
dist-tools: deps
	@$(CARGO) zigbuild --help >/dev/null 2>&1 || $(CARGO) install --locked cargo-zigbuild --version $(ZIGBUILD_VERSION)
	@if [ "$$(cat $(DIST_TOOLS)/.packages 2>/dev/null)" != "$(DIST_PY_PACKAGES)" ]; then \
	  echo "creating $(DIST_TOOLS): $(DIST_PY_PACKAGES)"; \
	  rm -rf $(DIST_TOOLS) && $(PYTHON) -m venv $(DIST_TOOLS) && \
	  $(DIST_TOOLS)/bin/pip install --quiet --disable-pip-version-check $(DIST_PY_PACKAGES) && \
	  echo "$(DIST_PY_PACKAGES)" > $(DIST_TOOLS)/.packages; fi

## dist: the wheel, the npm tarball and the linux-x86_64 archive, with SHA256SUMS, in dist/.
dist: dist-tools
	bash scripts/dist.sh

## test: everything CI runs.
test: deps lint build-test server test-rust test-python test-shell test-node test-tools test-packaging
	@echo "make test: all suites passed"

# lint: formatting and clippy (warnings are errors), one package at a time like the
# builds (the extension's rusqlite features must not unify with the bundled ones).
LINT_PACKAGES := oversqlite-protocol oversqlite-core oversqlite-engine oversqlite oversqlite-server oversqlite-cli oversqlite-tests oversqlite-bench
lint:
	$(CARGO) fmt --all --check
	@for p in $(LINT_PACKAGES); do \
	  echo "clippy -p $$p"; $(CARGO) clippy -q -p $$p --all-targets -- -D warnings || exit 1; done

test-rust:
	$(CARGO) test -p oversqlite-protocol
	$(CARGO) test -p oversqlite-core
	$(CARGO) test -p oversqlite-engine -- --include-ignored
	$(CARGO) test -p oversqlite
	$(CARGO) test -p oversqlite-server
	$(CARGO) build -p oversqlite --features test-faults
	$(CARGO) test -p oversqlite-tests
	$(CARGO) test -p oversqlite-cli

test-python: build-test server
	$(PYTHON) tests/python/test_local.py
	$(PYTHON) tests/python/test_sync.py

test-shell: build-test server
	bash tests/shell/run.sh
	bash tests/shell/sync.sh

node-deps: deps
	@if [ ! -f tests/node/node_modules/better-sqlite3/build/Release/better_sqlite3.node ]; then \
	  cd tests/node && npm_config_nodedir=/usr npm install --no-audit --no-fund --omit-lockfile-registry-resolved; fi

test-node: build-test server node-deps
	cd tests/node && node --test

# The demo script and the benchmark program, run small with the debug binaries so a
# broken demo or benchmark fails CI (the real figures come from `make bench`).
test-tools: build-test server
	$(CARGO) test -p oversqlite-bench
	$(CARGO) run -p oversqlite-bench -- --sizes 300,600 --busy-backlog 300 --busy-seconds 1 --auto-writes 5 --auto-idle-seconds 1 --no-write --extension $(EXT_DEBUG) --server-bin $(SERVER_DEBUG)
	OVERSQLITE_EXTENSION=$(EXT_DEBUG) OVERSQLITE_SERVER_BIN=$(SERVER_DEBUG) bash scripts/demo.sh

# The dist artifacts installed as a user would: the wheel in a fresh venv, the npm
# tarball in a fresh Node project, each syncing two devices through its own server.
test-packaging: dist node-deps
	bash tests/packaging/run.sh

clean:
	$(CARGO) clean
