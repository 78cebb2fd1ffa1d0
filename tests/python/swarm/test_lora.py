"""Client-owned LoRA trained through real `pollen serve` processes, and deep prompt tuning on the
distributed model: each Forward / Backward carries the hop's LoRA weights, Backward returns
their gradients, receipts commit to both, auditors recompute with them.

Tolerance: gradients through 2 servers equal local float32 autograd on the same weights within
atol 1e-5 + rtol 1e-4 (float32 both sides; summation order only). Model-level (loss through the
LM head): 1e-4.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re

import grpc
import pytest
import torch

import procs
from client import AutoDistributedModelForCausalLM
from client.remote import RemoteTunedBlocks
from client.tuning import TuningError
from node.auditor import SpanProvider, judge
from pollen import evidence as ev
from pollen import wire
from pollen.model import Lora, load_client, load_span
from pollen.model import lora as lora_mod
from pollen.proto import swarm_pb2 as pb
from pollen.proto import swarm_pb2_grpc as pb_grpc
from pollen.receipts import (KIND_FORWARD, ZERO_HASH, Receipt, ReceiptDomain, chain_input_hash, fold_lora,
                             fold_lora_grads, hash_tensor, sign_receipt)

N, C, B, T = 6, 64, 2, 7
ATOL, RTOL, TOL = 1e-5, 1e-4, 1e-4
RANK, ALPHA = 4, 8.0


@pytest.fixture(scope="module")
def servers(tiny_llama, tmp_path_factory):
    started = procs.start(tiny_llama, [(0, 3), (3, 6)], log_dir=tmp_path_factory.mktemp("logs-lora"))
    yield started
    procs.stop_all(started)


@pytest.fixture(scope="module")
def local(tiny_llama):
    return load_span(tiny_llama, 0, N)


@pytest.fixture()
def peers(servers):
    return [s.address for s in servers]


def random_lora(local, seed: int, n: int = N, targets=("q_proj", "v_proj"), rank: int = RANK) -> Lora:
    g = torch.Generator().manual_seed(seed)
    shapes = lora_mod.target_shapes(local.blocks[0], targets)
    a = tuple(0.1 * torch.randn(n, rank, i, generator=g) for i, _ in shapes.values())
    b = tuple(0.1 * torch.randn(n, o, rank, generator=g) for _, o in shapes.values())
    return Lora(rank, ALPHA, tuple(targets), a, b)


def close(a, b, atol=ATOL, rtol=RTOL):
    return torch.allclose(a, b, atol=atol, rtol=rtol)


def leaves(lora: Lora) -> Lora:
    return lora.map(lambda t: t.clone().requires_grad_(True))


def test_lora_gradients_through_two_servers_equal_local_autograd(tiny_llama, peers, local):
    model = AutoDistributedModelForCausalLM.from_pretrained(tiny_llama, initial_peers=peers)
    try:
        g = torch.Generator().manual_seed(0)
        x, weight = torch.randn(B, T, C, generator=g), torch.randn(B, T, C, generator=g)
        lora = random_lora(local, 1)
        xr, wr = x.clone().requires_grad_(True), leaves(lora)
        out = RemoteTunedBlocks.apply(xr, None, model.runner, wr, *wr.tensors())
        (out * weight).sum().backward()
        xl, wl = x.clone().requires_grad_(True), leaves(lora)
        ref = local(xl, lora=wl)
        (ref * weight).sum().backward()
        assert {(r.receipt.first_block, r.receipt.last_block) for r in model.runner.receipts} == {(0, 3), (3, 6)}
        assert close(out.detach(), ref.detach()) and close(xr.grad, xl.grad)
        for got, want in zip(wr.tensors(), wl.tensors()):
            assert want.grad.abs().sum() > 0 and close(got.grad, want.grad), (got.grad - want.grad).abs().max()
        with torch.no_grad():  # the adapter matters
            assert not close(local(x), ref.detach())
    finally:
        model.close()


def _local_lm(path, ids, lora: Lora):
    """Same weights in one process: logits (B, T, V) with LoRA leaves."""
    _, _, parts = load_client(path)
    return parts.head(load_span(path, 0, N)(parts.embed(ids), lora=lora))


def test_lora_model_loss_grads_equal_local_and_training_lowers_the_loss(tiny_llama, peers, local):
    model = AutoDistributedModelForCausalLM.from_pretrained(tiny_llama, initial_peers=peers, tuning_mode="lora",
                                                            lora_rank=RANK, lora_alpha=ALPHA)
    try:
        assert sum(p.numel() for p in model.trainable_parameters()) == sum(t.numel() for t in model.lora.tensors())
        with torch.no_grad():  # B = 0 at first (base model); make it non-zero to test every gradient
            for b, want in zip(model.lora.b, random_lora(local, 2).b):
                b.copy_(want)
        ids = torch.randint(0, 320, (B, T), generator=torch.Generator().manual_seed(3))
        loss = model(ids, labels=ids).loss
        loss.backward()
        wl = leaves(model.lora.layout())
        logits = _local_lm(tiny_llama, ids, wl)
        ref = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
        ref.backward()
        assert abs(loss.item() - ref.item()) < TOL
        for p, want in zip(model.lora.tensors(), wl.tensors()):
            assert close(p.grad, want.grad, TOL, TOL), (p.grad - want.grad).abs().max()
        opt = torch.optim.Adam(model.trainable_parameters(), lr=1e-2)
        losses = []
        for _ in range(8):
            opt.zero_grad()
            loss = model(ids, labels=ids).loss
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert losses[-1] < losses[0] * 0.9, losses
        with pytest.raises(TuningError, match="not built"):
            model.generate(ids[:1, :3], max_new_tokens=2)
    finally:
        model.close()


def test_lora_save_pretrained_peft_layout_loads_back_and_matches_merged_weights(tiny_llama, peers, tmp_path,
                                                                                 hf_models):
    """Keys and config as peft writes them; merging W += (alpha/r) B A into the transformers model
    by those key names gives the distributed model's logits."""
    from safetensors.torch import load_file

    model = AutoDistributedModelForCausalLM.from_pretrained(tiny_llama, initial_peers=peers, tuning_mode="lora",
                                                            lora_rank=RANK, lora_alpha=ALPHA,
                                                            lora_targets=("q_proj", "v_proj", "o_proj"))
    again = None
    try:
        with torch.no_grad():
            for b in model.lora.b:
                b.normal_(0, 0.1, generator=torch.Generator().manual_seed(4))
        path = model.save_pretrained(tmp_path / "lora")
        cfg = json.loads((path / "adapter_config.json").read_text())
        assert (cfg["peft_type"], cfg["r"], cfg["lora_alpha"], cfg["target_modules"]) == \
            ("LORA", RANK, ALPHA, ["q_proj", "v_proj", "o_proj"])
        tensors = load_file(str(path / "adapter_model.safetensors"))
        assert len(tensors) == 2 * 3 * N
        a_key = "base_model.model.model.layers.5.self_attn.v_proj.lora_A.weight"
        assert tensors[a_key].shape == (RANK, C) and tensors[a_key.replace("lora_A", "lora_B")].shape[1] == RANK
        ids = torch.randint(0, 320, (1, 6), generator=torch.Generator().manual_seed(5))
        with torch.no_grad():
            want = model(ids).logits
        hf = hf_models(tiny_llama)
        state = {k: v.clone() for k, v in hf.state_dict().items()}
        try:
            with torch.no_grad():
                for k, a in tensors.items():
                    if k.endswith("lora_A.weight"):
                        name = k.removeprefix("base_model.model.").removesuffix(".lora_A.weight") + ".weight"
                        hf.state_dict()[name].add_((ALPHA / RANK) * tensors[k.replace("lora_A", "lora_B")] @ a)
                merged = hf(ids).logits
        finally:
            hf.load_state_dict(state)
        assert close(merged, want, TOL, TOL), (merged - want).abs().max()
        again = AutoDistributedModelForCausalLM.from_pretrained(tiny_llama, initial_peers=peers, adapter=path)
        assert again.lora is not None and again.lora.targets == ("q_proj", "v_proj", "o_proj")
        with torch.no_grad():
            assert close(again(ids).logits, want)
        with pytest.raises(TuningError, match=r"\(r, alpha, targets\)"):
            again.load_adapter(_other_rank(tiny_llama, tmp_path))
    finally:
        model.close()
        if again is not None:
            again.close()


def _other_rank(tiny_llama, tmp_path):
    other = AutoDistributedModelForCausalLM.from_pretrained(tiny_llama, initial_peers=["127.0.0.1:9"],
                                                            tuning_mode="lora", lora_rank=2)
    return other.save_pretrained(tmp_path / "rank2")


def test_deep_ptune_model_grads_equal_local_and_save_load(tiny_llama, peers, local, tmp_path):
    P = 3
    model = AutoDistributedModelForCausalLM.from_pretrained(tiny_llama, initial_peers=peers,
                                                            tuning_mode="deep_ptune", pre_seq_len=P)
    again = None
    try:
        with torch.no_grad():  # deep prompts start at zero (Petals); make them matter
            model.deep_prompts.weight.normal_(0, 0.5, generator=torch.Generator().manual_seed(6))
        ids = torch.randint(0, 320, (B, T), generator=torch.Generator().manual_seed(7))
        loss = model(ids, labels=ids).loss
        loss.backward()
        _, _, parts = load_client(tiny_llama)
        shallow = model.prompts.weight.detach().clone().requires_grad_(True)
        deep = model.deep_prompts.weight.detach().clone().requires_grad_(True)
        h = torch.cat([shallow[None].expand(B, -1, -1), parts.embed(ids)], 1)  # (B, P + T, C)
        logits = parts.head(local(h, prompts=deep[:, None].expand(-1, B, -1, -1))[:, P:])
        ref = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
        ref.backward()
        assert abs(loss.item() - ref.item()) < TOL
        assert close(model.prompts.weight.grad, shallow.grad, TOL, TOL)
        assert close(model.deep_prompts.weight.grad, deep.grad, TOL, TOL)
        assert deep.grad[N - 1].abs().sum() > 0
        path = model.save_pretrained(tmp_path / "deep")
        cfg = json.loads((path / "adapter_config.json").read_text())
        assert (cfg["peft_type"], cfg["pollen_tuning_mode"], cfg["num_virtual_tokens"]) == ("PROMPT_TUNING",
                                                                                          "deep_ptune", P)
        again = AutoDistributedModelForCausalLM.from_pretrained(tiny_llama, initial_peers=peers, adapter=path)
        assert again.deep_prompts is not None and torch.equal(again.deep_prompts.weight, model.deep_prompts.weight)
        with torch.no_grad():
            assert close(again(ids).logits, logits.detach(), TOL, TOL)
            out = again.generate(ids[:1, :4], max_new_tokens=3)  # the deep prompts go with step 0 of the stream
            seq = ids[:1, :4]
            for _ in range(3):  # greedy reference: full forward each token
                seq = torch.cat([seq, again(seq).logits[:, -1:].argmax(-1)], 1)
        assert torch.equal(out, seq), (out, seq)
        with pytest.raises(TuningError, match="'deep_ptune' adapter"):
            _offline_load(tiny_llama, path)
    finally:
        model.close()
        if again is not None:
            again.close()


def _offline_load(tiny_llama, path):
    m = AutoDistributedModelForCausalLM.from_pretrained(tiny_llama, initial_peers=["127.0.0.1:9"],
                                                        tuning_mode="ptune", pre_seq_len=3)
    m.load_adapter(path)


# ---- receipts and disputes cover the LoRA weights and their gradients ------------------------------
def _receipt(msg: pb.Receipt) -> Receipt:
    return Receipt(server=msg.server, version_id=int(msg.version_id or "0"), first_block=msg.first_block,
                   last_block=msg.last_block, term=msg.term, kind=msg.kind, session_id=msg.session_id, step=msg.step,
                   input_hash=msg.input_hash, output_hash=msg.output_hash, blocks_root=msg.blocks_root,
                   issued_at=msg.issued_at)


def test_receipts_commit_to_lora_and_the_auditor_recomputes_with_it(servers, tiny_llama):
    head = servers[0]
    stub = pb_grpc.BlockServerStub(grpc.insecure_channel(head.address))
    span = load_span(tiny_llama, 0, 3)
    lora = random_lora(span, 8, n=3)
    g = torch.Generator().manual_seed(9)
    x, gy = torch.randn(1, 5, C, generator=g), torch.randn(1, 5, C, generator=g)
    fwd = stub.Forward(pb.ForwardRequest(session_id=os.urandom(32), start=0, end=3, hidden=wire.encode(x),
                                         lora=lora_mod.to_proto(lora)), timeout=30)
    plain = chain_input_hash(ZERO_HASH, hash_tensor(x))
    assert fwd.receipt.kind == KIND_FORWARD and fwd.receipt.input_hash == fold_lora(plain, lora) != plain
    resp = stub.Backward(pb.BackwardRequest(session_id=os.urandom(32), start=0, end=3, hidden=wire.encode(x),
                                            grad_output=wire.encode(gy), lora=lora_mod.to_proto(lora)), timeout=30)
    grad_lora = lora_mod.from_proto(resp.grad_lora, 1 << 20)
    bundle = ev.Evidence(_receipt(resp.receipt), bytes(resp.receipt.signature), [x], wire.decode(resp.grad_input),
                         wire.decode(resp.sketches), 0, gy, lora=lora, grad_lora=grad_lora).check()
    again = ev.from_bytes(ev.to_bytes(bundle))  # schema /4 round trip
    assert again.lora.digest() == lora.digest() and again.grad_lora.digest() == grad_lora.digest()
    spans = SpanProvider(None, None, 0, "", own=(span, 0, 3))
    assert judge(again, spans, 1e-3).verdict == "honest"
    with pytest.raises(ev.EvidenceError, match="outputHash"):  # the receipt commits to the LoRA gradients
        ev.Evidence(bundle.receipt, bundle.signature, [x], bundle.output, bundle.sketches, 0, gy, lora=lora,
                    grad_lora=grad_lora.map(lambda t: t * 1.01)).check()
    with pytest.raises(ev.EvidenceError, match="inputHash"):  # ... and to the weights it was sent
        ev.Evidence(bundle.receipt, bundle.signature, [x], bundle.output, bundle.sketches, 0, gy,
                    lora=lora.map(lambda t: t * 1.01), grad_lora=grad_lora).check()
    # a server that signed wrong LoRA gradients (right everything else) is found faulty
    wrong = grad_lora.map(lambda t: t * 1.5)
    r = bundle.receipt
    forged = dataclasses.replace(r, output_hash=fold_lora_grads(hash_tensor(bundle.output), wrong))
    sig = sign_receipt(forged, ReceiptDomain(31337, "0x000000000000000000000000000000000000c0de"), b"\x01" * 32)
    lying = ev.Evidence(forged, sig, [x], bundle.output, bundle.sketches, 0, gy, lora=lora, grad_lora=wrong).check()
    verdict = judge(lying, spans, 1e-3)
    assert verdict.verdict == "faulty" and verdict.error > 0.1, verdict


# ---- bad LoRA: a clear error for that caller, another session on the server goes on ----------------
def _bad_cases(span):
    good = random_lora(span, 10, n=3)
    a, b = good.a, good.b
    return {  # name: (Lora message, expected message)
        "wrong blocks": (lora_mod.to_proto(good.slice(0, 2)), r"expected A \(blocks, rank, in\) = \(3, 4, 64\)"),
        "wrong rank": (lora_mod.to_proto(Lora(8, ALPHA, good.targets, a, b)), r"\(3, 8, 64\)"),
        "wrong in": (lora_mod.to_proto(Lora(RANK, ALPHA, good.targets, (a[0][..., :32], a[1]), b)), "A .3, 4, 32."),
        "unknown target": (lora_mod.to_proto(Lora(RANK, ALPHA, ("q_proj", "nope"), a, b)), "'nope' is not a linear"),
        "NaN": (lora_mod.to_proto(good.map(lambda t: t.clone().fill_(float("nan")))), "NaN or inf"),
        "wrong dtype": (lora_mod.to_proto(good.map(torch.Tensor.half)), "float16, expected float32"),
        "zero rank": (pb.Lora(rank=0, alpha=1.0), r"rank 0 not in \[1, 256\]"),
        "no targets": (pb.Lora(rank=4, alpha=1.0), "no targets"),
        "zero alpha": (lora_mod.to_proto(Lora(RANK, 0.0, good.targets, a, b)), "alpha"),
        "duplicate target": (lora_mod.to_proto(Lora(RANK, ALPHA, ("q_proj", "q_proj"), a, (b[0], b[0]))), "distinct"),
    }


def test_bad_lora_rejected_while_another_session_continues(servers, tiny_llama):
    head = servers[0]
    channel = grpc.insecure_channel(head.address)
    stub = pb_grpc.BlockServerStub(channel)
    ref = load_span(tiny_llama, 0, 3)
    cache = ref.new_cache(1, 32)
    good = procs.Stream(stub)
    g = torch.Generator().manual_seed(11)
    x0 = torch.randn(1, 4, C, generator=g)
    req = pb.InferenceRequest(hidden=wire.encode(x0), step=0)
    req.open.CopyFrom(pb.SessionOpen(session_id=os.urandom(32), start=0, end=3, max_length=32, batch_size=1))
    with torch.no_grad():
        assert close(wire.decode(good.send(req).hidden), ref(x0, cache))
    x = torch.zeros(1, 4, C)
    try:
        for step, (name, (msg, message)) in enumerate(_bad_cases(ref).items(), start=1):
            for call, request in (("Forward", pb.ForwardRequest(session_id=os.urandom(32), start=0, end=3,
                                                                hidden=wire.encode(x), lora=msg)),
                                  ("Backward", pb.BackwardRequest(session_id=os.urandom(32), start=0, end=3,
                                                                  hidden=wire.encode(x), grad_output=wire.encode(x),
                                                                  lora=msg))):
                with pytest.raises(grpc.RpcError) as err:
                    getattr(stub, call)(request, timeout=30)
                details = err.value.details()
                assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (name, call, details)
                assert "bad request: lora: " in details and re.search(message, details), (name, call, details)
            xs = torch.randn(1, 1, C, generator=g)  # meanwhile the good session decodes on
            y = wire.decode(good.send(pb.InferenceRequest(hidden=wire.encode(xs), step=step)).hidden)
            with torch.no_grad():
                assert close(y, ref(xs, cache)), name
    finally:
        good.q.put(None)
        channel.close()


def test_lora_on_bloom_fused_qkv_equals_merged_weights(tiny_bloom):
    """One process (no servers): the hook-applied LoRA on bloom's fused query_key_value equals
    merging W += (alpha/r) B A into a copy of the block, and leaves the frozen weights untouched."""
    import copy

    span = load_span(tiny_bloom, 0, 2)
    lora = random_lora(span, 12, n=2, targets=("query_key_value", "dense_4h_to_h"))
    x = torch.randn(1, 5, span.hidden_size, generator=torch.Generator().manual_seed(13))
    before = [p.clone() for p in span.parameters()]
    with torch.no_grad():
        got = span(x, lora=lora)
        merged = copy.deepcopy(span)
        for i, block in enumerate(merged.blocks):
            mods = {n.rsplit(".", 1)[-1]: m for n, m in block.named_modules()}
            for k, t in enumerate(lora.targets):
                mods[t].weight += lora.scale * lora.b[k][i] @ lora.a[k][i]
        want = merged(x)
        assert close(got, want) and not close(got, span(x))  # and without lora: the base model again
    assert all(torch.equal(p, q) for p, q in zip(before, span.parameters()))


@pytest.fixture()
def spare(tiny_llama, tmp_path):
    started = procs.start(tiny_llama, [(0, 3), (3, 6), (3, 6)], log_dir=tmp_path)
    yield started
    procs.stop_all(started)


def test_server_killed_between_forward_and_backward_keeps_lora_gradients(tiny_llama, spare, local):
    model = AutoDistributedModelForCausalLM.from_pretrained(tiny_llama, initial_peers=[s.address for s in spare])
    try:
        g = torch.Generator().manual_seed(14)
        x, weight = torch.randn(B, T, C, generator=g), torch.randn(B, T, C, generator=g)
        lora = random_lora(local, 15)
        wr = leaves(lora)
        out = RemoteTunedBlocks.apply(x, None, model.runner, wr, *wr.tensors())  # forward on one route ...
        by_addr = {s.address: s for s in spare}
        tail = next(by_addr[r.address] for r in model.runner.receipts if by_addr[r.address].blocks == (3, 6))
        tail.kill9()  # ... the tail dies before the backward
        (out * weight).sum().backward()
        wl = leaves(lora)
        (local(x, lora=wl) * weight).sum().backward()
        assert tail.address not in {r.address for r in model.runner.receipts[-2:]}
        for got, want in zip(wr.tensors(), wl.tensors()):
            assert close(got.grad, want.grad), (got.grad - want.grad).abs().max()
    finally:
        model.close()
