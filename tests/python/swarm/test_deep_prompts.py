"""Deep prompts over the wire (Petals' deep prompt tuning) through real `pollen serve` processes:
per-block prompts go with Forward / Backward / the first inference step, servers apply them
before each block and return their gradient, receipts commit to them, failover keeps them.

Tolerance: gradients through the swarm equal local float32 autograd on the same weights within
atol 1e-5 + rtol 1e-4 (both are float32 on this CPU; the differences are summation order only).
"""

from __future__ import annotations

import os
import re

import grpc
import pytest
import torch

import procs
from client import AutoDistributedModelForCausalLM
from client.remote import RemoteDeepBlocks
from pollen import judgment, wire
from pollen.model import load_span
from pollen.proto import swarm_pb2 as pb
from pollen.proto import swarm_pb2_grpc as pb_grpc
from pollen.receipts import KIND_BACKWARD, KIND_FORWARD, ZERO_HASH, chain_input_hash, fold_prompts, hash_tensor

N, C, B, T, P = 6, 64, 2, 7, 3  # blocks, hidden, batch, seq, pre_seq_len
ATOL, RTOL = 1e-5, 1e-4


@pytest.fixture(scope="module")
def servers(tiny_llama, tmp_path_factory):
    """Two replicas of each half: every route is 2 servers, and either can fail over."""
    started = procs.start(tiny_llama, [(0, 3), (3, 6), (0, 3), (3, 6)], log_dir=tmp_path_factory.mktemp("logs-ptune"))
    yield started
    procs.stop_all(started)


@pytest.fixture(scope="module")
def local(tiny_llama):
    return load_span(tiny_llama, 0, N)


@pytest.fixture()
def model(tiny_llama, servers):
    m = AutoDistributedModelForCausalLM.from_pretrained(tiny_llama, initial_peers=[s.address for s in servers
                                                                                   if s.alive()])
    yield m
    m.close()


def inputs(seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, C, generator=g)  # (B, T, C)
    prompts = 0.5 * torch.randn(N, B, P, C, generator=g)  # (blocks, B, P, C)
    weight = torch.randn(B, T, C, generator=g)  # loss = (out * weight).sum()
    return x, prompts, weight


def local_grads(local, x, prompts, weight):
    x, prompts = x.clone().requires_grad_(True), prompts.clone().requires_grad_(True)
    out = local(x, prompts=prompts)
    (out * weight).sum().backward()
    return out.detach(), x.grad, prompts.grad


def remote_grads(runner, x, prompts, weight):
    x, prompts = x.clone().requires_grad_(True), prompts.clone().requires_grad_(True)
    out = RemoteDeepBlocks.apply(x, prompts, runner)
    (out * weight).sum().backward()
    return out.detach(), x.grad, prompts.grad


def close(a, b):
    return torch.allclose(a, b, atol=ATOL, rtol=RTOL)


def near(a, b):
    """Inference outputs (|y| up to ~100, KV replays in other chunkings): per-token relative L2 < 1e-5."""
    return judgment.max_error(a, b) < 1e-5


def test_deep_prompt_gradients_through_two_servers_equal_local_autograd(model, local):
    x, prompts, weight = inputs(0)
    out, gx, gp = remote_grads(model.runner, x, prompts, weight)
    ref_out, ref_gx, ref_gp = local_grads(local, x, prompts, weight)
    hops = {(r.receipt.first_block, r.receipt.last_block) for r in model.runner.receipts}
    assert hops == {(0, 3), (3, 6)}  # a route of 2 servers
    assert close(out, ref_out), (out - ref_out).abs().max()
    assert close(gx, ref_gx), (gx - ref_gx).abs().max()
    assert close(gp, ref_gp), (gp - ref_gp).abs().max()
    assert gp.abs().sum() > 0 and gp[N - 1].abs().sum() > 0  # every block's prompt gets a gradient
    with torch.no_grad():  # the prompts matter: without them the output differs
        assert not close(local(x), ref_out)


def test_runner_api_and_receipts_commit_to_the_prompts(model, local):
    x, prompts, weight = inputs(1)
    runner = model.runner
    out, used = runner.forward(x, 0, N, prompts=prompts)
    assert [(s, e) for s, e, _ in used] == [(0, 3), (3, 6)]
    fwd = runner.receipts[-2:]
    assert [r.receipt.kind for r in fwd] == [KIND_FORWARD] * 2
    first = fwd[0].receipt
    plain = chain_input_hash(ZERO_HASH, hash_tensor(x))
    assert first.input_hash == fold_prompts(plain, prompts[:3]) != plain
    gx, gp = runner.backward(0, N, x, weight, prompts)
    assert gp.shape == prompts.shape and runner.receipts[-1].receipt.kind == KIND_BACKWARD
    _, ref_gx, ref_gp = local_grads(local, x, prompts, weight)
    assert close(gx, ref_gx) and close(gp, ref_gp)
    assert torch.is_tensor(runner.backward(0, N, x, weight))  # no prompts: dL/dx alone, as before
    with pytest.raises(ValueError, match="deep prompts must be"):
        runner.forward(x, 0, N, prompts=prompts[:4])


def test_a_few_training_steps_lower_the_loss(model):
    """A plain torch.optim loop on deep prompts only (frozen remote blocks)."""
    x, _, _ = inputs(2)
    target = torch.randn(B, T, C, generator=torch.Generator().manual_seed(3))
    prompts = torch.zeros(N, B, P, C, requires_grad=True)
    opt = torch.optim.Adam([prompts], lr=0.05)
    losses = []
    for _ in range(6):
        opt.zero_grad()
        out = RemoteDeepBlocks.apply(x, prompts, model.runner)
        loss = ((out[:, :P] - target[:, :P]) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.95, losses


# ---- bad prompts: a clear error for that caller, another session on the server goes on ----------
def open_step(x, prompts=None, max_length=16):
    req = pb.InferenceRequest(hidden=wire.encode(x), step=0)
    req.open.CopyFrom(pb.SessionOpen(session_id=os.urandom(32), start=0, end=3, max_length=max_length,
                                     batch_size=x.shape[0]))
    if prompts is not None:
        req.prompts.CopyFrom(wire.encode(prompts))
    return req


BAD = {  # name: prompts (for hidden (1, 4, C), blocks [0, 3)), expected message
    "too few blocks": (torch.zeros(2, 1, 2, C), "blocks=3"),
    "wrong batch": (torch.zeros(3, 2, 2, C), "batch=1"),
    "longer than the input": (torch.zeros(3, 1, 5, C), r"pre_seq_len in \[1, 4\]"),
    "wrong hidden": (torch.zeros(3, 1, 2, C + 1), "hidden=64"),
    "wrong rank": (torch.zeros(3, 2, C), "got shape"),
    "wrong dtype": (torch.zeros(3, 1, 2, C, dtype=torch.float16), "computes in float32"),
    "NaN": (torch.full((3, 1, 2, C), float("nan")), "NaN or inf"),
}


def test_bad_prompts_rejected_while_another_session_continues(servers, tiny_llama):
    head = next(s for s in servers if s.blocks == (0, 3) and s.alive())
    channel = grpc.insecure_channel(head.address)
    stub = pb_grpc.BlockServerStub(channel)
    ref = load_span(tiny_llama, 0, 3)
    cache = ref.new_cache(1, 16)
    good = procs.Stream(stub)
    g = torch.Generator().manual_seed(9)
    x0, p0 = torch.randn(1, 4, C, generator=g), torch.randn(3, 1, 2, C, generator=g)
    with torch.no_grad():  # the good session itself opens with deep prompts
        assert close(wire.decode(good.send(open_step(x0, p0)).hidden), ref(x0, cache, prompts=p0))
    x = torch.zeros(1, 4, C)
    try:
        for step, (name, (bad, message)) in enumerate(BAD.items(), start=1):
            for call, req in (("Forward", pb.ForwardRequest(session_id=os.urandom(32), start=0, end=3,
                                                            hidden=wire.encode(x), prompts=wire.encode(bad))),
                              ("Backward", pb.BackwardRequest(session_id=os.urandom(32), start=0, end=3,
                                                              hidden=wire.encode(x), grad_output=wire.encode(x),
                                                              prompts=wire.encode(bad)))):
                with pytest.raises(grpc.RpcError) as err:
                    getattr(stub, call)(req, timeout=30)
                assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (name, call)
                assert "prompts" in err.value.details(), (name, call, err.value.details())
                assert re.search(message, err.value.details()), (name, call, err.value.details())
            with pytest.raises(grpc.RpcError) as err:  # and on an inference stream's first step
                procs.Stream(stub).send(open_step(x, bad))
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "prompts" in err.value.details()
            xs = torch.randn(1, 1, C, generator=g)  # meanwhile the good session decodes on
            y = wire.decode(good.send(pb.InferenceRequest(hidden=wire.encode(xs), step=step)).hidden)
            with torch.no_grad():
                assert close(y, ref(xs, cache)), name
        late = pb.InferenceRequest(hidden=wire.encode(torch.zeros(1, 4, C)), step=len(BAD) + 1,
                                   prompts=wire.encode(torch.zeros(3, 1, 2, C)))
        with pytest.raises(grpc.RpcError) as err:  # prompts after position 0 end that stream only
            good.send(late)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "position 0" in err.value.details()
    finally:
        good.q.put(None)
        channel.close()


# ---- inference sessions: prompts with the first step; spot checks replay them -------------------
def local_session(local, steps, prompts):
    cache = local.new_cache(B, sum(x.shape[1] for x in steps))
    with torch.no_grad():
        return [local(x, cache, prompts=prompts if i == 0 else None) for i, x in enumerate(steps)]


def session_steps(seed: int):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, t, C, generator=g) for t in (5, 1, 1, 1)], 0.5 * torch.randn(N, B, P, C, generator=g)


def test_inference_session_with_deep_prompts_and_a_spot_check(tiny_llama, servers, local):
    from client.spotcheck import CheckedModel, SpotChecker

    model = CheckedModel.from_pretrained(tiny_llama, initial_peers=[s.address for s in servers])
    try:
        steps, prompts = session_steps(7)
        with model.inference_session(max_length=9, batch_size=B) as sess:
            got = [sess.step(x, prompts if i == 0 else None) for i, x in enumerate(steps)]
            assert len(sess.route) == 2
            with pytest.raises(ValueError, match="first step"):
                sess.step(steps[1], prompts)
        for y, ref in zip(got, local_session(local, steps, prompts)):
            assert near(y, ref), judgment.max_error(y, ref)
        results = SpotChecker(model, tolerance=0.05).check_session(sess)
        assert [r.verdict for r in results] == ["ok", "ok"], results  # replayed with the same prompts
        assert all(h.prompts is not None for h in sess.hop_logs())
        bundle = sess.hop_logs()[0].evidence(3, 0)
        assert bundle.check().prompts is not None  # the receipt's inputHash commits to them
    finally:
        model.close()


@pytest.fixture()
def spare(tiny_llama, tmp_path):
    started = procs.start(tiny_llama, [(0, 3), (3, 6), (3, 6)], log_dir=tmp_path)
    yield started
    procs.stop_all(started)


def test_session_failover_resends_the_prompts(tiny_llama, spare, local):
    model = AutoDistributedModelForCausalLM.from_pretrained(tiny_llama, initial_peers=[s.address for s in spare])
    by_addr = {s.address: s for s in spare}
    try:
        steps, prompts = session_steps(8)
        with model.inference_session(max_length=8, batch_size=B) as sess:
            got = [sess.step(steps[0], prompts), sess.step(steps[1])]
            by_addr[sess.route[-1].address].kill9()  # the tail dies mid-session
            got += [sess.step(x) for x in steps[2:]]
            assert sess.failovers == 1
        for y, ref in zip(got, local_session(local, steps, prompts)):
            assert near(y, ref), judgment.max_error(y, ref)
    finally:
        model.close()


# ---- failover: a killed server's hop is retried elsewhere with the same prompts ------------------
def test_failover_mid_training_keeps_prompt_gradients(model, local, servers):
    """Must run last in this module: it kills servers."""
    x, prompts, weight = inputs(4)
    ref_out, ref_gx, ref_gp = local_grads(local, x, prompts, weight)
    xr, pr = x.clone().requires_grad_(True), prompts.clone().requires_grad_(True)
    out = RemoteDeepBlocks.apply(xr, pr, model.runner)  # forward on one route ...
    by_addr = {s.address: s for s in servers}
    used = {r.address for r in model.runner.receipts}
    tail = next(by_addr[a] for a in used if by_addr[a].blocks == (3, 6))
    tail.kill9()  # ... the tail dies between forward and backward
    (out * weight).sum().backward()
    assert close(out.detach(), ref_out) and close(xr.grad, ref_gx) and close(pr.grad, ref_gp)
    backward_hosts = {r.address for r in model.runner.receipts[-2:]}
    assert tail.address not in backward_hosts
    head = next(by_addr[a] for a in backward_hosts if by_addr[a].blocks == (0, 3))
    head.kill9()  # and the head dies before the next step: forward fails over too
    _, gx, gp = remote_grads(model.runner, x, prompts, weight)
    assert close(gx, ref_gx) and close(gp, ref_gp)
    assert not {tail.address, head.address} & {r.address for r in model.runner.receipts[-4:]}
