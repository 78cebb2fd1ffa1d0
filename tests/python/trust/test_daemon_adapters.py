"""`pollen node --adapters CID`: the daemon serves a published LoRA of its version by name,
fetched by CID from its store and checked against the version's manifest."""

from __future__ import annotations

import torch

from client import AutoDistributedModelForCausalLM
from pollen.adapters import publish_lora
from pollen.proto import swarm_pb2 as pb
from trusthelp import tiny_stack


def _trained_lora(stack, out):
    model = AutoDistributedModelForCausalLM.from_pretrained(stack.workdir / "tiny", initial_peers=["127.0.0.1:9"],
                                                            tuning_mode="lora", lora_rank=4)
    with torch.no_grad():
        for b in model.lora.b:
            b.normal_(0, 0.2, generator=torch.Generator().manual_seed(1))
    return model.save_pretrained(out)


def test_the_daemon_serves_a_published_adapter_by_name(tmp_path_factory):
    from client.connection import ServerConnection
    from pollen.store import LocalStore

    stack = tiny_stack(tmp_path_factory, "daemon-adapters", seed=4)
    try:
        cid, _ = publish_lora(_trained_lora(stack, stack.workdir / "lora"), LocalStore(stack.store_path),
                              stack.manifest_cid, name="lora")
        d = stack.daemon("a1", 1, "--blocks", "0:6", "--adapters", cid).start()
        ready = d.wait_event("ready", 150)
        info = ServerConnection(f"127.0.0.1:{ready['port']}").call("Info", pb.InfoRequest(), 10)
        assert list(info.adapters) == [cid]
    finally:
        stack.stop()
