"""Fixtures for the content-store tests: a real js-ipfs node on its own free loopback port
(started here, stopped by its PID), tiny random Llama / BLOOM checkpoints made with
transformers, and fresh embedded stores."""

from __future__ import annotations

import os

import pytest

from pollen.store import KuboStore, LocalStore
from pollen.store.jsipfs import installed, start_node


def pattern(size: int) -> bytes:
    """Deterministic test content: byte i is (7*i + 3) mod 251 (period 251, so chunks differ)."""
    period = bytes((7 * i + 3) % 251 for i in range(251))
    return (period * (size // 251 + 1))[:size]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="session")
def ipfs_node(tmp_path_factory):
    if not installed():
        pytest.fail("js-ipfs is not installed: run `make ipfs-install` (npm ci in tools/ipfs)")
    node = start_node(tmp_path_factory.mktemp("ipfs") / "repo")
    yield node
    node.stop()
    assert not pid_alive(node.pid), f"js-ipfs node PID {node.pid} still running after stop"


@pytest.fixture
def kubo(ipfs_node):
    with KuboStore(ipfs_node.api_url, find_timeout=1.0) as store:
        yield store


@pytest.fixture
def local(tmp_path):
    return LocalStore(tmp_path / "local-store")


def make_checkpoint(family: str, folder, seed: int, max_shard_size: str | None = None):
    """A random-weight transformers checkpoint (+ a word-level tokenizer.json) in `folder`."""
    import torch
    from tokenizers import Tokenizer, models
    from transformers import BloomConfig, BloomForCausalLM, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    if family == "llama":
        model = LlamaForCausalLM(LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=5,
                                             num_attention_heads=4, num_key_value_heads=2, vocab_size=256))
    else:
        model = BloomForCausalLM(BloomConfig(hidden_size=64, n_head=4, n_layer=4, vocab_size=256))
    kwargs = {"max_shard_size": max_shard_size} if max_shard_size else {}
    model.save_pretrained(str(folder), **kwargs)
    vocab = {"<unk>": 0, **{f"w{i}": i + 1 for i in range(255)}}
    Tokenizer(models.WordLevel(vocab, unk_token="<unk>")).save(str(folder / "tokenizer.json"))
    return folder


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory):
    return make_checkpoint("llama", tmp_path_factory.mktemp("ckpt") / "tiny-llama", seed=1)


@pytest.fixture(scope="session")
def tiny_bloom(tmp_path_factory):
    """BLOOM saved as a multi-file checkpoint (model.safetensors.index.json)."""
    return make_checkpoint("bloom", tmp_path_factory.mktemp("ckpt") / "tiny-bloom", seed=2,
                           max_shard_size="300KB")
