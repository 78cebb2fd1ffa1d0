# Pollen — two commands matter: `make demo` and `make test`. Both install what is missing
# (a project venv with pinned deps, npm deps, the offline Solidity compiler) and are quick when
# nothing is missing. Area-specific targets live in mk/*.mk and add themselves to TEST_TARGETS.

SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PY := .venv/bin/python
APE := .venv/bin/ape
STAMPS := .stamps
# `cmd 2>&1 | $(call tag,name)` prefixes each line with [name] as it comes (suites run side by
# side in `make test`); the shell's pipefail keeps cmd's exit status.
tag = sed -u 's/^/[$(1)] /'
ANVIL_PORT ?= 8546
export SOLCX_BINARY_PATH := $(CURDIR)/.solc
export PATH := $(CURDIR)/node_modules/.bin:$(CURDIR)/.venv/bin:$(PATH)
# Ape keeps its data (accounts, package cache) inside the project, never in ~/.ape.
export APE_DATA_FOLDER ?= $(CURDIR)/.cache/ape

# The Python suite first: `make test` runs the suites two at a time, and it is the longest.
TEST_TARGETS := test-python test-contracts

.PHONY: setup demo chain test test-contracts test-python compile gas clean
.DEFAULT_GOAL := help

help:
	@echo "make demo   — the whole story: chain, swarm of daemons, a cheater caught and slashed, web UI"
	@echo "make chain  — just a local anvil with the contracts deployed and the web UI"
	@echo "make test   — install what is missing and run every test suite"
	@echo "make gas    — measure gas per operation on anvil (benchmarks/gas.py)"

include $(wildcard mk/*.mk)

ifeq ($(IN_MAKE_TEST),1)
test-frontend: | test-python test-contracts
endif

setup: $(STAMPS)/python $(STAMPS)/npm .solc/solc-v0.8.37

$(STAMPS)/python: requirements.txt pyproject.toml
	@mkdir -p $(STAMPS)
	@test -x $(PY) || python3 -m venv .venv
	@echo "==> installing pinned Python dependencies into .venv (first run: ~1-2 min)"
	.venv/bin/pip install -q -r requirements.txt 2>&1 | { grep -v 'is ignored: it is neither a file' || true; }
	.venv/bin/pip install -q --no-deps -e . 2>&1 | { grep -v 'is ignored: it is neither a file' || true; }
	@touch $@

$(STAMPS)/npm: package.json package-lock.json
	@mkdir -p $(STAMPS)
	@echo "==> installing npm dependencies (solc-js, anvil, OpenZeppelin)"
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# py-solc-x / ape-solidity look for `solc-v<version>` in SOLCX_BINARY_PATH: point it at our
# solc-js wrapper (a symlink, so the script finds node_modules from its real location).
.solc/solc-v0.8.37: tools/solc.js
	@mkdir -p .solc
	ln -sf ../tools/solc.js $@
	chmod +x tools/solc.js

compile: setup
	@$(APE) compile 2>&1 | grep -v '^$$' | tail -1
	@$(PY) -m pollen.artifacts export >/dev/null  # the ABIs an installed package carries

# Two suites at a time: the Python suite (the longest; most of it waits on its server and
# chain processes) beside the contracts, then the web UI alone (its browser tests wait on
# confirmations with timeouts, so they never share the box). On 2 cores this takes about the
# Python suite's time plus the web UI's. Output comes as it is printed (no --output-sync: that
# holds a suite's output until it ends), each line tagged with its suite. TEST_JOBS=1 runs
# them one after the other.
TEST_JOBS ?= 2
test: setup
	@$(MAKE) --no-print-directory -j$(TEST_JOBS) IN_MAKE_TEST=1 $(TEST_TARGETS)
	@echo "==> all test suites passed"

# Contract tests on Ape's in-process chain, then the lifecycle story again on a real anvil
# (ape-foundry starts it on a free port and stops it; see ape-config.yaml).
test-contracts: setup compile
	$(APE) test tests/contracts -q -p no:warnings 2>&1 | $(call tag,contracts)
	$(APE) test tests/contracts/test_lifecycle.py -q -p no:warnings --network ethereum:local:foundry 2>&1 | $(call tag,contracts)

# Every Python suite in one pytest process: chain bindings on anvil, store (real js-ipfs node),
# swarm (real server processes). mk/*.mk add their prerequisites (node installs, checkpoints).
test-python: setup compile
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -p no:ape_test -p no:warnings tests/python 2>&1 | $(call tag,python)

# A local anvil with the contracts deployed and the web UI, nothing else (for UI work, scripts).
chain: setup compile frontend-build
	$(PY) -m devstack.tour --port $(ANVIL_PORT)

gas: setup
	$(PY) benchmarks/gas.py --write-readme

clean:
	rm -rf .build $(STAMPS) .cache
