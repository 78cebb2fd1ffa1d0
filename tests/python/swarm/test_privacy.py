"""Privacy controls through real server processes: allowed / blocked servers (also across a
failover), and local first / last blocks, checked against what each server itself recorded of
the requests it served (POLLEN_RPC_TRACE digests of the hidden states it was sent)."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

import procs
from client import AutoDistributedModelForCausalLM
from client.routing import NoAllowedRoute
from pollen import wire

IDS = torch.tensor([[5, 17, 42, 9, 101, 7]])


@pytest.fixture(scope="module")
def traced(tiny_llama, tmp_path_factory, monkeypatch_module):
    """Three full-span servers of the tiny Llama, each tracing what it is sent."""
    tmp = tmp_path_factory.mktemp("privacy")
    servers, files = [], []
    try:
        for i in range(3):
            files.append(tmp / f"trace-{i}.jsonl")
            monkeypatch_module.setenv("POLLEN_RPC_TRACE", str(files[-1]))
            servers += procs.start(tiny_llama, [(0, 6)], log_dir=tmp)
        yield servers, files
    finally:
        procs.stop_all(servers)


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def digests(files) -> set[str]:
    lines = [json.loads(line) for f in files if f.exists() for line in f.read_text().splitlines()]
    return {line["digest"] for line in lines}


def clear(files) -> None:
    for f in files:
        f.write_text("")


def digest_of(x: torch.Tensor) -> str:
    """What a server's trace records for a request carrying hidden states x (as the client sends them)."""
    return hashlib.sha256(wire.encode(x).SerializeToString(deterministic=True)).hexdigest()[:16]


def embedding_digests(model, ids: torch.Tensor) -> set[str]:
    """Digests of the prompt's embeddings (B, T, C) and of every token's own row (1, 1, C)."""
    embed = model.parts.embed
    with torch.no_grad():
        rows = {digest_of(embed(ids[:, t:t + 1])) for t in range(ids.shape[1])}
        return rows | {digest_of(embed(ids))}


def test_servers_see_embeddings_without_local_blocks(traced, tiny_llama):
    """The check below can fail: without local blocks the first server is sent the embeddings."""
    servers, files = traced
    clear(files)
    model = AutoDistributedModelForCausalLM.from_pretrained(tiny_llama, initial_peers=[s.address for s in servers])
    try:
        out = model.generate(IDS, max_new_tokens=4)
        assert model(IDS).logits.shape == (1, IDS.shape[1], model.config.vocab_size)
    finally:
        model.close()
    seen = digests(files)
    assert digest_of(model.parts.embed(IDS).detach()) in seen  # Inference and Forward both sent it
    assert len(embedding_digests(model, out[:, IDS.shape[1]:-1]) & seen) == 3  # each decode step's token


def test_local_first_and_last_blocks_hide_embeddings(traced, tiny_llama, hf_models):
    servers, files = traced
    clear(files)
    hf = hf_models(tiny_llama)
    model = AutoDistributedModelForCausalLM.from_pretrained(tiny_llama, initial_peers=[s.address for s in servers],
                                                            local_blocks=(1, 1))
    try:
        assert model.local.remote_span == (1, 5)
        with model.inference_session(max_length=16) as session:
            out = model.generate(IDS, max_new_tokens=6, session=session)
            assert all(1 <= h.start and h.end <= 5 for h in session.route)
        logits = model(IDS).logits
    finally:
        model.close()
    assert out.tolist() == hf.generate(IDS, max_new_tokens=6, do_sample=False).tolist()
    torch.testing.assert_close(logits, hf(IDS).logits, atol=1e-4, rtol=1e-4)
    seen = digests(files)
    assert seen, "the servers traced nothing"
    assert not embedding_digests(model, out) & seen  # no prompt or generated token's embedding reached a server
    lines = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert {(line["start"], line["end"]) for line in lines if line["rpc"] == "Forward"} == {(1, 5)}


def test_training_through_local_blocks_matches_the_remote_only_model(traced, tiny_llama):
    """Prompt tuning's loss and gradients are the same whether blocks 0, 1 and 5 run here or remotely."""
    servers, _ = traced
    results = []
    for local in (None, (2, 1)):
        model = AutoDistributedModelForCausalLM.from_pretrained(tiny_llama, initial_peers=[s.address for s in servers],
                                                                local_blocks=local, tuning_mode="ptune",
                                                                pre_seq_len=2)
        try:
            loss = model(IDS, labels=IDS).loss
            loss.backward()
            results.append((loss.detach(), [p.grad for p in model.trainable_parameters()]))
        finally:
            model.close()
    (loss0, grads0), (loss1, grads1) = results
    torch.testing.assert_close(loss1, loss0, atol=1e-5, rtol=1e-5)
    assert grads1 and all(g is not None and g.abs().sum() > 0 for g in grads1)
    for g1, g0 in zip(grads1, grads0):
        torch.testing.assert_close(g1, g0, atol=1e-5, rtol=1e-4)


def test_allowed_and_blocked_servers_route_and_fail_clearly(traced, tiny_llama):
    servers, _ = traced
    a, b, c = (s.address for s in servers)
    peers = [a, b, c]
    model = AutoDistributedModelForCausalLM.from_pretrained(tiny_llama, initial_peers=peers,
                                                            allowed_servers=f"{a}@0:4,{b}@4:6")
    try:
        with model.inference_session(max_length=16) as session:
            session.step(model.parts.embed(IDS))
            assert [(h.address, h.start, h.end) for h in session.route] == [(a, 0, 4), (b, 4, 6)]
    finally:
        model.close()
    model = AutoDistributedModelForCausalLM.from_pretrained(tiny_llama, initial_peers=peers,
                                                            blocked_servers=[a, f"{b}@2:"], allowed_servers=[b, c])
    try:
        with model.inference_session(max_length=16) as session:
            session.step(model.parts.embed(IDS))
            used = {h.address for h in session.route}
            assert a not in used and all(h.address != b or h.end <= 2 for h in session.route)
    finally:
        model.close()
    model = AutoDistributedModelForCausalLM.from_pretrained(tiny_llama, initial_peers=peers,
                                                            allowed_servers=[f"{a}@0:2"])
    try:
        with pytest.raises(NoAllowedRoute, match=r"blocks \[2, 6\) of 6.*allowed: " + a):
            model.generate(IDS, max_new_tokens=1)
    finally:
        model.close()


def test_failover_stays_inside_the_filter(tiny_llama, tmp_path, monkeypatch):
    from client.errors import ClientError

    servers = procs.start(tiny_llama, [(0, 6)] * 2, log_dir=tmp_path)
    monkeypatch.setenv("POLLEN_RPC_TRACE", str(tmp_path / "trace-blocked.jsonl"))
    servers += procs.start(tiny_llama, [(0, 6)], log_dir=tmp_path)
    try:
        a, b, c = (s.address for s in servers)
        model = AutoDistributedModelForCausalLM.from_pretrained(tiny_llama, initial_peers=[a, b, c],
                                                                blocked_servers=c)
        with model.inference_session(max_length=16) as session:
            h = session.step(model.parts.embed(IDS))
            first = session.route[0].address
            other = ({a, b} - {first}).pop()
            next(s for s in servers if s.address == first).kill9()
            session.step(model.parts.embed(IDS[:, :1]))
            assert session.failovers == 1 and [hop.address for hop in session.route] == [other]
            next(s for s in servers if s.address == other).kill9()
            with pytest.raises(ClientError):  # the blocked server is up, but is no way out
                session.step(model.parts.embed(IDS[:, :1]))
        model.close()
        assert h.shape == (1, IDS.shape[1], model.config.hidden_size)
        trace = tmp_path / "trace-blocked.jsonl"
        assert not trace.exists()  # the blocked server was never sent anything...
        model = AutoDistributedModelForCausalLM.from_pretrained(tiny_llama, initial_peers=[c])
        model(IDS)
        model.close()
        assert trace.read_text().count("Forward") == 1  # ...though it traces what it is sent
    finally:
        procs.stop_all(servers)
