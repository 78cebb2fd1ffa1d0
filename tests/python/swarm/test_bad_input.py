"""Bad requests get a clear error for that caller; another session keeps decoding meanwhile."""

from __future__ import annotations

import os
import re

import grpc
import numpy as np
import pytest
import torch

import procs
from pollen import wire
from pollen.model import load_span
from pollen.proto import swarm_pb2 as pb
from pollen.proto import swarm_pb2_grpc as pb_grpc

HIDDEN = 64


@pytest.fixture(scope="module")
def server(tiny_llama, tmp_path_factory):
    servers = procs.start(tiny_llama, [(0, 6)], "--max-message-mb", "1", "--max-length", "32",
                          log_dir=tmp_path_factory.mktemp("logs-bad"))
    yield servers[0]
    procs.stop_all(servers)


@pytest.fixture(scope="module")
def good_session(server, tiny_llama):
    """A healthy session decoding step by step; `step()` checks each output vs local blocks."""
    channel = grpc.insecure_channel(server.address)
    stream = procs.Stream(pb_grpc.BlockServerStub(channel))
    local = load_span(tiny_llama, 0, 6)
    cache = local.new_cache(1, 32)
    state = {"step": 0}
    gen = torch.Generator().manual_seed(0)

    def step():
        x = torch.randn(1, 1, HIDDEN, generator=gen)
        req = pb.InferenceRequest(hidden=wire.encode(x), step=state["step"])
        if state["step"] == 0:
            req.open.CopyFrom(pb.SessionOpen(session_id=os.urandom(32), start=0, end=6,
                                             max_length=32, batch_size=1))
        y = wire.decode(stream.send(req).hidden)
        with torch.no_grad():
            ref = local(x, cache)  # |y| up to ~100: float32 sums in another order (threads) differ by ~1e-4
            assert torch.allclose(y, ref, atol=5e-4, rtol=1e-5), (state["step"], (y - ref).abs().max())
        state["step"] += 1

    step()
    yield step
    stream.q.put(None)
    channel.close()


@pytest.fixture()
def stub(server):
    channel = grpc.insecure_channel(server.address)
    yield pb_grpc.BlockServerStub(channel)
    channel.close()


def fwd(hidden: pb.Tensor, start=0, end=6, session_id=None) -> pb.ForwardRequest:
    return pb.ForwardRequest(session_id=session_id if session_id is not None else os.urandom(32),
                             start=start, end=end, hidden=hidden)


def raw(dtype, shape, data=None) -> pb.Tensor:
    n = int(np.prod(shape))
    if data is None:
        data = np.zeros(n, dtype={"float32": np.float32, "float16": np.float16}[dtype]).tobytes()
    return pb.Tensor(dtype=dtype, shape=list(shape), data=data)


def nan_tensor():
    x = torch.zeros(1, 2, HIDDEN)
    x[0, 1, 3] = float("nan")
    return wire.encode(x)


def inf_tensor():
    x = torch.zeros(1, 2, HIDDEN)
    x[0, 0, 0] = float("inf")
    return wire.encode(x)


FORWARD_CASES = {
    "wrong hidden size": (fwd(wire.encode(torch.zeros(1, 2, 48))), "hidden size 48"),
    "wrong dtype": (fwd(raw("float16", (1, 2, HIDDEN))), "computes in float32"),
    "wrong rank": (fwd(wire.encode(torch.zeros(2, HIDDEN))), r"\(batch, seq, hidden\)"),
    "unknown dtype": (fwd(raw("float32", (1, 1, HIDDEN)).__class__(dtype="int64", shape=[1, 1, HIDDEN],
                                                                        data=b"\0" * 8 * HIDDEN)),
                      "unknown dtype"),
    "byte count mismatch": (fwd(raw("float32", (1, 2, HIDDEN), b"\0" * 100)), "data bytes"),
    "NaN": (fwd(nan_tensor()), "NaN or inf"),
    "inf": (fwd(inf_tensor()), "NaN or inf"),
    "span outside server": (fwd(wire.encode(torch.zeros(1, 1, HIDDEN)), 4, 9), "not within"),
    "short session id": (fwd(wire.encode(torch.zeros(1, 1, HIDDEN)), session_id=b"x"), "32 bytes"),
    "too many elements": (fwd(raw("float32", (1, 1, HIDDEN)).__class__(
        dtype="float32", shape=[1, 10**6, HIDDEN], data=b"")), "exceed the limit"),
}


@pytest.mark.parametrize("case", list(FORWARD_CASES))
def test_bad_forward_rejected_and_others_served(case, stub, good_session):
    request, message = FORWARD_CASES[case]
    good_session()
    with pytest.raises(grpc.RpcError) as err:
        stub.Forward(request, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert re.search(message, err.value.details()), err.value.details()
    good_session()


def _open(max_length=8, **kw):
    return pb.SessionOpen(session_id=os.urandom(32), start=0, end=6, max_length=max_length,
                          batch_size=1, **kw)


def test_session_beyond_max_length(stub, good_session):
    s = procs.Stream(stub)
    s.send(pb.InferenceRequest(open=_open(8), hidden=wire.encode(torch.zeros(1, 6, HIDDEN)), step=0))
    good_session()
    with pytest.raises(grpc.RpcError) as err:
        s.send(pb.InferenceRequest(hidden=wire.encode(torch.zeros(1, 3, HIDDEN)), step=1))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "exceed the session's max_length 8" in err.value.details()
    good_session()


def test_declared_length_beyond_server_limit(stub, good_session):
    with pytest.raises(grpc.RpcError) as err:
        procs.Stream(stub).send(pb.InferenceRequest(open=_open(33), hidden=wire.encode(torch.zeros(1, 1, HIDDEN))))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "max_length 33" in err.value.details()
    good_session()


def test_unknown_session_and_wrong_step(stub, good_session):
    with pytest.raises(grpc.RpcError) as err:  # a stream that never opened a session
        procs.Stream(stub).send(pb.InferenceRequest(hidden=wire.encode(torch.zeros(1, 1, HIDDEN)), step=3))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "unknown session" in err.value.details()
    s = procs.Stream(stub)
    s.send(pb.InferenceRequest(open=_open(), hidden=wire.encode(torch.zeros(1, 1, HIDDEN)), step=0))
    with pytest.raises(grpc.RpcError) as err:
        s.send(pb.InferenceRequest(hidden=wire.encode(torch.zeros(1, 1, HIDDEN)), step=5))
    assert "step 5 but the session is at step 1" in err.value.details()
    good_session()


def test_garbage_and_oversize_messages(server, good_session):
    channel = grpc.insecure_channel(server.address, options=[("grpc.max_send_message_length", 8 << 20)])
    try:
        forward_raw = channel.unary_unary("/pollen.swarm.BlockServer/Forward",
                                          request_serializer=lambda b: b,
                                          response_deserializer=lambda b: b)
        with pytest.raises(grpc.RpcError) as err:
            forward_raw(b"\xff\xfe\x00garbage" * 10, timeout=10)
        assert err.value.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.INVALID_ARGUMENT)
        good_session()
        with pytest.raises(grpc.RpcError) as err:  # 2 MiB against the server's 1 MiB limit
            forward_raw(fwd(wire.encode(torch.zeros(1, 8192, HIDDEN))).SerializeToString(), timeout=10)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        good_session()
    finally:
        channel.close()


def test_backward_shape_mismatch(stub, good_session):
    req = pb.BackwardRequest(session_id=os.urandom(32), start=0, end=6,
                             hidden=wire.encode(torch.zeros(1, 3, HIDDEN)),
                             grad_output=wire.encode(torch.zeros(1, 2, HIDDEN)))
    with pytest.raises(grpc.RpcError) as err:
        stub.Backward(req, timeout=10)
    assert "grad_output shape" in err.value.details()
    good_session()


def test_info_reports_span_and_cache(stub):
    info = stub.Info(pb.InfoRequest(), timeout=10)
    assert (info.start, info.end, info.num_blocks, info.hidden_size) == (0, 6, 6, HIDDEN)
    assert info.dtype == "float32" and info.throughput > 0 and info.free_cache_tokens > 0
    assert info.active_sessions >= 1  # the good session is open


@pytest.fixture(scope="module")
def small_server(tiny_llama, tmp_path_factory):
    # 6 blocks x 2 KV heads x 16 dims x fp32 x (k, v) = 1536 bytes per token: 1 MiB = 682 tokens
    servers = procs.start(tiny_llama, [(0, 6)], "--cache-mb", "1", "--session-timeout", "1.5",
                          log_dir=tmp_path_factory.mktemp("logs-small"))
    yield servers[0]
    procs.stop_all(servers)


def test_cache_budget_and_idle_timeout(small_server):
    channel = grpc.insecure_channel(small_server.address)
    stub = pb_grpc.BlockServerStub(channel)
    try:
        assert stub.Info(pb.InfoRequest()).free_cache_tokens == 682
        first = procs.Stream(stub)
        first.send(pb.InferenceRequest(open=_open(600), hidden=wire.encode(torch.zeros(1, 1, HIDDEN)), step=0))
        assert stub.Info(pb.InfoRequest()).free_cache_tokens == 82
        with pytest.raises(grpc.RpcError) as err:
            procs.Stream(stub).send(pb.InferenceRequest(open=_open(600), hidden=wire.encode(torch.zeros(1, 1, HIDDEN))))
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "does not fit" in err.value.details()
        import time

        time.sleep(2.5)  # idle beyond --session-timeout: the server closes it and frees the cache
        assert stub.Info(pb.InfoRequest()).free_cache_tokens == 682
        with pytest.raises(grpc.RpcError) as err:
            first.send(pb.InferenceRequest(hidden=wire.encode(torch.zeros(1, 1, HIDDEN)), step=1))
        assert err.value.code() == grpc.StatusCode.CANCELLED
        again = procs.Stream(stub)
        again.send(pb.InferenceRequest(open=_open(600), hidden=wire.encode(torch.zeros(1, 1, HIDDEN)), step=0))
    finally:
        channel.close()
