"""Server-to-server push (node/push.py, client/session.py) against real `pollen serve` processes:
same tokens and receipts as client-relayed hops, fallback when a push cannot go through,
failover mid-generation, and forged pushes refused while the server keeps serving."""

from __future__ import annotations

import hashlib
import os
import queue
import time

import grpc
import pytest
import torch

import procs
from client import AutoDistributedModelForCausalLM, InferenceSession
from pollen import wire
from pollen.proto import swarm_pb2 as pb
from pollen.proto import swarm_pb2_grpc as pb_grpc


def _generate(path, peers, ids, new, push, session_cls=None, **session_kw):
    """(tokens, session) of a greedy generation with push on / off."""
    model = AutoDistributedModelForCausalLM.from_pretrained(path, initial_peers=peers, push=push)
    try:
        if session_cls is None:
            sess = model.inference_session(max_length=ids.shape[1] + new, batch_size=ids.shape[0])
        else:
            sess = session_cls(model.swarm, model.verifier, ids.shape[1] + new, ids.shape[0], push=push,
                               **session_kw)
        with sess:
            out = model.generate(ids, max_new_tokens=new, session=sess)
        return out, sess
    finally:
        model.close()


def _chain(sess):
    """What an auditor sees of a session's receipts, session ids aside."""
    return [(r.receipt.first_block, r.receipt.last_block, r.receipt.step, r.receipt.input_hash,
             r.receipt.output_hash, r.receipt.blocks_root) for r in sess.receipts]


def test_push_equals_relayed_and_transformers(swarm_llama, tiny_llama, hf_models):
    routes, _ = swarm_llama
    ids = torch.randint(0, 320, (2, 7), generator=torch.Generator().manual_seed(5))
    pushed, sp = _generate(tiny_llama, routes[3], ids, 12, push=None)
    relayed, sr = _generate(tiny_llama, routes[3], ids, 12, push=False)
    ref = hf_models(tiny_llama).generate(ids, max_new_tokens=12, do_sample=False)
    assert pushed.tolist() == relayed.tolist() == ref.tolist()
    steps = 12  # prefill + 11 decode steps, the last sampled token is not sent
    assert len(sp.route) == 3 and sr.pushed == 0
    assert sp.pushed + sp.push_fallbacks == 2 * steps and sp.pushed >= steps  # most pushes beat the copy
    assert len(sp.receipts) == len(sr.receipts) == 3 * steps
    assert _chain(sp) == _chain(sr)  # every hop's input-hash chain as if relayed


class _Unreachable(InferenceSession):
    """Names a dead port as every next hop's push address: what a next server that the
    previous one cannot reach looks like (the client itself still reaches it)."""

    def _announce(self, j):
        target = super()._announce(j)
        target.address = "127.0.0.1:1"
        return target


def test_unreachable_next_server_falls_back(swarm_llama, tiny_llama, hf_models):
    routes, _ = swarm_llama
    ids = torch.randint(0, 320, (1, 5), generator=torch.Generator().manual_seed(9))
    out, sess = _generate(tiny_llama, routes[2], ids, 6, push=True, session_cls=_Unreachable, push_grace_s=0.2)
    assert sess.pushed == 0 and sess.push_fallbacks == 6
    assert out.tolist() == hf_models(tiny_llama).generate(ids, max_new_tokens=6, do_sample=False).tolist()


def test_push_error_then_relay_on_same_stream(swarm_llama, tiny_llama):
    """No push and no copy within wait_ms: nothing ran, the step is then sent on the same stream."""
    _, by = swarm_llama
    stream, opened = _stream(by["tail"].address), _open(by["tail"].blocks)
    x = torch.randn(1, 3, 64)
    first = stream.send(pb.InferenceRequest(open=opened, step=0, pushed=pb.PushedInput(
        token_hash=hashlib.sha256(b"t" * 32).digest(), wait_ms=200)))
    assert "no input for step 0" in first.push_error and not first.HasField("receipt")
    second = stream.send(pb.InferenceRequest(step=0, hidden=wire.encode(x)))
    assert second.receipt.step == 0 and wire.decode(second.hidden).shape == x.shape
    stream.close()


def test_forged_pushes_refused_server_keeps_serving(swarm_llama, tiny_llama):
    _, by = swarm_llama
    address, blocks = by["tail"].address, by["tail"].blocks
    stub = pb_grpc.BlockServerStub(grpc.insecure_channel(address))
    stream, opened = _stream(address), _open(blocks)
    token, x = os.urandom(32), torch.randn(1, 2, 64)
    stream.put(pb.InferenceRequest(open=opened, step=0, pushed=pb.PushedInput(
        token_hash=hashlib.sha256(token).digest(), wait_ms=20000)))

    def push(**kw):
        fields = dict(session_id=opened.session_id, step=0, hidden=wire.encode(x), token=token, wait_ms=2000) | kw
        return stub.Push(pb.PushRequest(**fields), timeout=30)

    refused = {
        "wrong token": (dict(token=os.urandom(32)), grpc.StatusCode.PERMISSION_DENIED, "token does not match"),
        "unknown session": (dict(session_id=os.urandom(32), wait_ms=100), grpc.StatusCode.NOT_FOUND,
                            "no inference session"),
        "wrong step": (dict(step=3), grpc.StatusCode.FAILED_PRECONDITION, "ahead of the session"),
        "wrong shape": (dict(hidden=wire.encode(torch.randn(1, 2, 63))), grpc.StatusCode.INVALID_ARGUMENT,
                        "hidden size 63"),
        "wrong batch": (dict(hidden=wire.encode(torch.randn(2, 2, 64))), grpc.StatusCode.INVALID_ARGUMENT, "batch"),
        "NaN": (dict(hidden=wire.encode(torch.full((1, 2, 64), float("nan")))), grpc.StatusCode.INVALID_ARGUMENT,
                "NaN"),
    }
    for name, (kw, code, words) in refused.items():
        with pytest.raises(grpc.RpcError) as err:
            push(**kw)
        assert err.value.code() == code and words in err.value.details(), name
    # meanwhile another session on the same server is served as usual
    other = _stream(address)
    assert other.send(pb.InferenceRequest(open=_open(blocks), step=0, hidden=wire.encode(x))).receipt.step == 0
    other.close()
    push()  # the genuine push: accepted, and the waiting step runs on it
    response = stream.get()
    assert response.pushed and response.receipt.step == 0
    with pytest.raises(grpc.RpcError) as err:  # the same push again: that step already ran
        push()
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "already ran" in err.value.details()
    stream.close()


class _Victim(grpc.GenericRpcHandler):
    """A gRPC service that is no Pollen server (the third party a client names as the next hop):
    records every call and its request bytes, answers UNIMPLEMENTED."""

    def __init__(self, delay_s: float = 0.0):
        from concurrent.futures import ThreadPoolExecutor

        self.delay_s = delay_s  # how long each answer takes (a slow host: probes overlap)
        self.calls: list[tuple[str, int]] = []
        self.server = grpc.server(ThreadPoolExecutor(4), handlers=[self])
        self.address = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        self.server.start()

    def service(self, details):
        method = details.method

        def unary(request: bytes, context):
            self.calls.append((method, len(request)))
            time.sleep(self.delay_s)
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "no such service here")

        return grpc.unary_unary_rpc_method_handler(unary)  # no deserializer: the raw bytes

    @property
    def received(self) -> int:
        return sum(n for _, n in self.calls)

    def close(self):
        self.server.stop(0)


def test_servers_do_not_push_hidden_states_at_a_host_that_is_no_server(swarm_llama):
    """The attack: a client names a third party's host:port as every step's "next hop", to make
    servers send it hidden-state-sized traffic. The server first asks it for Info; it is no
    Pollen server, so it gets that small probe once and none of the 8 pushed outputs (each
    8 or 64 tokens x 64 floats, 2-16 KiB); the client's own steps are served as usual."""
    _, by = swarm_llama
    victim = _Victim()
    blocks = by["head"].blocks
    stream = _stream(by["head"].address)
    opened = pb.SessionOpen(session_id=os.urandom(32), start=blocks[0], end=blocks[1], max_length=128, batch_size=1)
    x = torch.randn(1, 64, 64)
    for step in range(8):
        target = pb.PushTo(address=victim.address, session_id=os.urandom(32), step=step, token=os.urandom(32),
                           wait_ms=100)
        request = pb.InferenceRequest(step=step, hidden=wire.encode(x if step == 0 else x[:, :8]), push=target)
        if step == 0:
            request.open.CopyFrom(opened)
        response = stream.send(request)
        assert response.receipt.step == step  # served as usual
    stream.close()
    time.sleep(3)  # the pushes run in the background
    victim.close()
    assert [m for m, _ in victim.calls] == ["/pollen.swarm.BlockServer/Info"] and victim.received == 0, victim.calls


def test_the_push_target_check_trusts_real_servers_and_caches_verdicts(swarm_llama):
    from node.push import TARGET_BAD_S, Pusher

    _, by = swarm_llama
    now = [0.0]
    pusher = Pusher(1 << 24, clock=lambda: now[0])
    victim = _Victim()
    try:
        assert pusher.is_server(by["tail"].address)
        assert not pusher.is_server(victim.address) and not pusher.is_server(victim.address)
        assert len(victim.calls) == 1  # the verdict is cached
        now[0] += TARGET_BAD_S + 1  # asked again only after the window
        assert not pusher.is_server(victim.address) and len(victim.calls) == 2
    finally:
        pusher.close()
        victim.close()


@pytest.fixture()
def redundant_swarm(tiny_llama, tmp_path):
    servers = [procs.spawn(tiny_llama, span, log_dir=tmp_path) for span in [(0, 2), (2, 4), (2, 4), (4, 6)]]
    try:
        procs.wait_ready(servers, timeout=300)  # four at once on a loaded machine
    except Exception:
        procs.stop_all(servers)
        raise
    yield servers
    procs.stop_all(servers)


def test_kill9_middle_server_with_push_gives_identical_output(redundant_swarm, tiny_llama, hf_models):
    by_addr = {s.address: s for s in redundant_swarm}
    model = AutoDistributedModelForCausalLM.from_pretrained(tiny_llama, initial_peers=list(by_addr))
    ids = torch.randint(0, 320, (2, 6), generator=torch.Generator().manual_seed(21))
    killed = []
    try:
        with model.inference_session(max_length=30, batch_size=2) as sess:
            sess.push = True

            def streamer(_tokens):
                if len(sess.receipts) >= 3 * 5 and not killed:  # after 5 steps: the middle server in use
                    killed.append(by_addr[sess.route[1].address])
                    killed[-1].kill9()

            out = model.generate(ids, max_new_tokens=14, session=sess, streamer=streamer)
            assert len(killed) == 1 and not killed[0].alive() and sess.failovers == 1
            assert killed[0].address not in {h.address for h in sess.route}
            assert sess.pushed > 0  # pushes before and after the failover
        ref = hf_models(tiny_llama).generate(ids, max_new_tokens=14, do_sample=False)
        assert out.tolist() == ref.tolist()
    finally:
        model.close()


# ---- raw streams -------------------------------------------------------------------------------
class _stream:
    """An Inference stream driven by hand: put() without waiting, get() the next response."""

    def __init__(self, address: str):
        self.channel = grpc.insecure_channel(address)
        self.q: queue.SimpleQueue = queue.SimpleQueue()
        self.responses = pb_grpc.BlockServerStub(self.channel).Inference(iter(self.q.get, None), timeout=60)

    def put(self, request):
        self.q.put(request)

    def get(self):
        return next(self.responses)

    def send(self, request):
        self.put(request)
        return self.get()

    def close(self):
        self.q.put(None)
        self.channel.close()


def _open(blocks) -> pb.SessionOpen:
    return pb.SessionOpen(session_id=os.urandom(32), start=blocks[0], end=blocks[1], max_length=16, batch_size=1)


def test_pushes_that_start_together_probe_their_target_once():
    """Eight pushes to one slow non-server start at once (the race that let two probes through
    before): they share one Info call and all refuse."""
    from concurrent.futures import ThreadPoolExecutor

    from node.push import Pusher

    pusher = Pusher(1 << 24)
    victim = _Victim(delay_s=0.5)
    try:
        with ThreadPoolExecutor(8) as pool:
            verdicts = list(pool.map(lambda _: pusher.is_server(victim.address), range(8)))
        assert verdicts == [False] * 8 and [m for m, _ in victim.calls] == ["/pollen.swarm.BlockServer/Info"]
    finally:
        pusher.close()
        victim.close()
