"""Fixtures for the content-store tests: a real js-ipfs node on its own free loopback port
(started here, stopped by its PID), tiny random Llama / BLOOM checkpoints made with
transformers, and fresh embedded stores."""

from __future__ import annotations

import pytest

from pollen.store import KuboStore, LocalStore
from pollen.store.jsipfs import installed, start_node
from storehelp import make_checkpoint, pid_alive


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


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory):
    return make_checkpoint("llama", tmp_path_factory.mktemp("ckpt") / "tiny-llama", seed=1)


@pytest.fixture(scope="session")
def tiny_bloom(tmp_path_factory):
    """BLOOM saved as a multi-file checkpoint (model.safetensors.index.json)."""
    return make_checkpoint("bloom", tmp_path_factory.mktemp("ckpt") / "tiny-bloom", seed=2,
                           max_shard_size="300KB")
