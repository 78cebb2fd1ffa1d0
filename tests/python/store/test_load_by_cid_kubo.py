"""`from_pretrained` by manifest CID against a REAL IPFS node's Kubo RPC API (js-ipfs): a tiny
Llama published to the node, a `pollen serve` process serving its blocks, the client parts
fetched from the node by CID with progress and verified, tokens equal to transformers'."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from client import AutoDistributedModelForCausalLM
from pollen.publish import publish_checkpoint
from pollen.store import KuboStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "swarm"))
import procs  # noqa: E402  (the swarm tests' server-process helper)

IDS = torch.tensor([[5, 17, 42, 9, 101, 7]])


@pytest.fixture(scope="module")
def published(ipfs_node, tiny_llama):
    with KuboStore(ipfs_node.api_url) as store:
        return publish_checkpoint(tiny_llama, store, name="tiny-llama")


@pytest.fixture(scope="module")
def server(tiny_llama, tmp_path_factory):
    n = json.loads((tiny_llama / "config.json").read_text())["num_hidden_layers"]
    servers = procs.start(tiny_llama, [(0, n)], log_dir=tmp_path_factory.mktemp("kubo-logs"))
    yield servers[0]
    procs.stop_all(servers)


def test_from_pretrained_by_cid_from_a_kubo_node_matches_transformers(ipfs_node, published, server, tiny_llama,
                                                                       tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    cache = tmp_path / "cache"
    model = AutoDistributedModelForCausalLM.from_pretrained(f"ipfs://{published.manifest_cid}",
                                                            store=ipfs_node.api_url, cache_dir=cache,
                                                            initial_peers=[server.address])
    try:
        out = model.generate(IDS, max_new_tokens=6)
    finally:
        model.close()
    hf = AutoModelForCausalLM.from_pretrained(str(tiny_llama), dtype=torch.float32).eval()
    assert out.tolist() == hf.generate(IDS, max_new_tokens=6, do_sample=False).tolist()
    folder = cache / "versions" / published.manifest_cid
    assert (folder / "client.safetensors").is_file()
    assert not (folder / "blocks" / "block_00000.safetensors").exists()  # the servers run the blocks
    assert "client.safetensors" in capsys.readouterr().err  # progress was shown for the download


def test_a_cid_the_node_does_not_have_fails_clearly(ipfs_node, tmp_path):
    from client.loading import ModelSourceError
    from pollen.store import cid_of_bytes

    missing = cid_of_bytes(b"no such manifest")
    # the node looks for the block for find_timeout before it answers "not found" (30 s by
    # default): 2 s here, the answer is the same
    store = KuboStore(ipfs_node.api_url, find_timeout=2)
    with pytest.raises(ModelSourceError, match=missing):
        AutoDistributedModelForCausalLM.from_pretrained(missing, store=store, cache_dir=tmp_path,
                                                        initial_peers=["127.0.0.1:1"])
