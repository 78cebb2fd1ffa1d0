"""kill -9 of servers mid-generation: the client re-routes, replays, and the output is unchanged."""

from __future__ import annotations

import pytest
import torch

import procs
from client import AutoDistributedModelForCausalLM


@pytest.fixture()
def redundant_swarm(tiny_llama, tmp_path):
    servers = procs.start(tiny_llama, [(0, 3), (0, 3), (3, 6), (3, 6)], log_dir=tmp_path)
    yield servers
    procs.stop_all(servers)


def test_kill9_during_generation_gives_identical_output(redundant_swarm, tiny_llama, hf_models):
    by_addr = {s.address: s for s in redundant_swarm}
    model = AutoDistributedModelForCausalLM.from_pretrained(tiny_llama, initial_peers=list(by_addr))
    ids = torch.randint(0, 320, (2, 6), generator=torch.Generator().manual_seed(21))
    killed = []
    try:
        with model.inference_session(max_length=40, batch_size=2) as sess:
            def streamer(_tokens):
                n = len(sess.receipts) // max(1, len(sess.route))
                if n == 4 and not killed:  # kill the tail server in use
                    killed.append(by_addr[sess.route[-1].address])
                    killed[-1].kill9()
                elif n == 9 and len(killed) == 1:  # then the head server in use
                    killed.append(by_addr[sess.route[0].address])
                    killed[-1].kill9()

            out = model.generate(ids, max_new_tokens=16, session=sess, streamer=streamer)
            assert len(killed) == 2 and not any(k.alive() for k in killed)
            assert sess.failovers == 2
            assert all(h.address not in {k.address for k in killed} for h in sess.route)
        ref = hf_models(tiny_llama).generate(ids, max_new_tokens=16, do_sample=False)
        assert out.tolist() == ref.tolist()
    finally:
        model.close()


def test_failover_for_parallel_forward(redundant_swarm, tiny_llama, hf_models):
    model = AutoDistributedModelForCausalLM.from_pretrained(
        tiny_llama, initial_peers=[s.address for s in redundant_swarm])
    try:
        ids = torch.randint(0, 320, (1, 8), generator=torch.Generator().manual_seed(4))
        model.swarm.refresh()
        route = model.swarm.route()
        next(s for s in redundant_swarm if s.address == route[0].address).kill9()
        with torch.no_grad():
            got = model(ids).logits
            ref = hf_models(tiny_llama)(ids).logits
        assert (got - ref).abs().max() < 1e-4
    finally:
        model.close()
