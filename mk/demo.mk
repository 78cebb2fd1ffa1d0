# The trust demo (demo/): anvil, contracts, SmolLM2-135M published to the embedded store and
# registered, four `pollen node` daemons (one cheating via fault injection), streamed generation,
# spot check, dispute, audit, slash, reroute, summary; the web UI is served against its chain.

.PHONY: demo demo-trust test-trust

demo: demo-trust

# (the checkpoint rule lives in mk/swarm.mk; spelled out here as mk files load in any order)
demo-trust: setup compile frontend-build .cache/models/smollm2-135m/model.safetensors
	HF_HUB_OFFLINE=1 $(PY) -m demo

# only the trust-layer tests (they also run inside test-python)
test-trust: setup compile
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -p no:ape_test -p no:warnings tests/python/trust
