# Content store / model versions on IPFS (pollen/store, pollen/manifest.py, pollen/shards.py,
# pollen/publish.py). The tests start a real js-ipfs node (tools/ipfs: ipfs@0.66.1 on Node 22
# from npm), so `test-store` installs it first; the chain-wiring test deploys the compiled
# contracts on a real anvil, hence `compile`. tests/python/store also sits under test-python's
# `pytest tests/python`, which therefore needs the node installed too.

IPFS_DIR := tools/ipfs

.PHONY: ipfs-install test-store bench-store

ipfs-install: $(STAMPS)/ipfs

$(STAMPS)/ipfs: $(IPFS_DIR)/package.json $(IPFS_DIR)/package-lock.json
	@mkdir -p $(STAMPS)
	@echo "==> installing js-ipfs 0.66.1 + Node 22 into $(IPFS_DIR) (first run: a few minutes)"
	cd $(IPFS_DIR) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

test-store: setup ipfs-install compile
	$(PY) -m pytest -q -p no:ape_test tests/python/store

test-python: ipfs-install

# Publish / fetch throughput for both backends and time from manifest CID to shards ready.
# Uses SmolLM2-135M from .cache/models/ when prepared (mk/swarm.mk), else a synthetic checkpoint.
bench-store: setup ipfs-install
	$(PY) benchmarks/store.py
