"""Batched sessions on real `pollen serve` processes (node/batching.py): concurrent sessions of
different prompt lengths each get exactly their alone tokens, a bad step inside a batch fails
only its own session, and a lone session is not slowed down by the batching machinery; parallel
Forwards and Backwards (node/request_batching.py) each get their alone outputs."""

from __future__ import annotations

import functools
import json
import os
import statistics
import threading
import time

import grpc
import pytest
import torch

import procs
from pollen import judgment, wire
from pollen.proto import swarm_pb2 as pb
from pollen.proto import swarm_pb2_grpc as pb_grpc

HIDDEN = 64  # tiny_llama


@pytest.fixture(scope="module")
def servers(tiny_llama, tmp_path_factory):
    """{"batched": (server, trace file), "alone": (server, None)}: the same full span, with and
    without batching."""
    tmp = tmp_path_factory.mktemp("batching")
    trace = tmp / "trace.jsonl"
    os.environ["POLLEN_RPC_TRACE"] = str(trace)
    try:
        batched = procs.spawn(tiny_llama, (0, 6), "--max-batch-sessions", "8", log_dir=tmp)
    finally:
        del os.environ["POLLEN_RPC_TRACE"]
    alone = procs.spawn(tiny_llama, (0, 6), "--max-batch-sessions", "1", log_dir=tmp)
    try:
        procs.wait_ready([batched, alone])
        yield {"batched": (batched, trace), "alone": (alone, None)}
    finally:
        procs.stop_all([batched, alone])


def _batch_sizes(trace, sessions=None) -> list[int]:
    """Batch sizes the server recorded for Inference steps (of the given session id prefixes)."""
    lines = [json.loads(x) for x in trace.read_text().splitlines()] if trace.exists() else []
    return [x["batch"] for x in lines if x["rpc"] == "Inference" and (sessions is None or x["session"] in sessions)]


def test_concurrent_sessions_get_exactly_their_alone_tokens(servers, tiny_llama):
    from client import AutoDistributedModelForCausalLM

    batched, trace = servers["batched"]
    alone, _ = servers["alone"]
    prompts = [torch.randint(0, 320, (1, 3 + i), generator=torch.Generator().manual_seed(40 + i)) for i in range(8)]
    ref_model = AutoDistributedModelForCausalLM.from_pretrained(tiny_llama, initial_peers=[alone.address])
    model = AutoDistributedModelForCausalLM.from_pretrained(tiny_llama, initial_peers=[batched.address])
    try:
        expected = [ref_model.generate(p, max_new_tokens=16) for p in prompts]  # one at a time
        before = len(_batch_sizes(trace))
        results, errors = {}, []

        def run(i):
            try:
                results[i] = model.generate(prompts[i], max_new_tokens=16)
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
        assert not errors, errors
        for i, ref in enumerate(expected):
            assert results[i].tolist() == ref.tolist(), f"session {i} differs from its alone run"
        sizes = _batch_sizes(trace)[before:]
        assert max(sizes) > 1, "no step was batched: the test did not exercise batching"
    finally:
        model.close()
        ref_model.close()


def _open(stream, sid: bytes, batch: int, length: int, x: torch.Tensor):
    o = pb.SessionOpen(session_id=sid, start=0, end=6, max_length=length, batch_size=batch)
    return stream.send(pb.InferenceRequest(open=o, hidden=wire.encode(x), step=0))


def test_a_bad_step_in_a_batch_fails_only_its_session(servers):
    """While a long prefill holds the compute loop, four sessions queue a decode step each, one
    of them wrong (step number, NaN or wrong width): the three others run as a batch and match
    their alone outputs; the bad one gets its own error; the server goes on serving."""
    batched, trace = servers["batched"]
    alone, _ = servers["alone"]
    g = torch.Generator().manual_seed(7)
    bads = {"step": lambda x: pb.InferenceRequest(hidden=wire.encode(x), step=5),
            "nan": lambda x: pb.InferenceRequest(hidden=wire.encode(x * float("nan")), step=1),
            "width": lambda x: pb.InferenceRequest(hidden=wire.encode(torch.zeros(1, 1, HIDDEN + 1)), step=1)}
    big = [("grpc.max_receive_message_length", 64 << 20)]  # the long prefill's sketches
    with grpc.insecure_channel(batched.address, big) as ch_b, grpc.insecure_channel(alone.address) as ch_a:
        stub_b, stub_a = pb_grpc.BlockServerStub(ch_b), pb_grpc.BlockServerStub(ch_a)
        shared = 0
        for kind, bad in bads.items():
            sids = [os.urandom(32) for _ in range(4)]
            prefill = [torch.randn(1, 2 + i, HIDDEN, generator=g) for i in range(4)]
            steps = [torch.randn(1, 1, HIDDEN, generator=g) for _ in range(4)]
            streams = [procs.Stream(stub_b) for _ in sids]
            for s, sid, p in zip(streams, sids, prefill):
                _open(s, sid, 1, 16, p)
            outcomes = _queued_behind_a_prefill(stub_b, g, [
                functools.partial(s.send, bad(x) if i == 0 else pb.InferenceRequest(hidden=wire.encode(x), step=1))
                for i, (s, x) in enumerate(zip(streams, steps))])
            assert isinstance(outcomes[0], grpc.RpcError), f"{kind}: the bad step was served"
            assert outcomes[0].code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION)
            for i in (1, 2, 3):
                ref_stream = procs.Stream(stub_a)
                _open(ref_stream, sids[i], 1, 16, prefill[i])
                ref = ref_stream.send(pb.InferenceRequest(hidden=wire.encode(steps[i]), step=1))
                got = outcomes[i]
                assert isinstance(got, pb.InferenceResponse), f"{kind}: good session {i} failed: {got}"
                assert judgment.max_error(wire.decode(got.hidden), wire.decode(ref.hidden)) < 1e-5
                assert got.receipt.input_hash == ref.receipt.input_hash and got.receipt.step == 1
                assert streams[i].send(pb.InferenceRequest(hidden=wire.encode(steps[i]), step=2)).receipt.step == 2
                ref_stream.q.put(None)
            for s in streams:
                s.q.put(None)
            shared += max(_batch_sizes(trace, {sid.hex()[:16] for sid in sids[1:]})) == 4
        assert shared, "the bad step never shared a batch with the good ones: nothing was tested"


def test_parallel_forwards_run_as_one_pass_each_with_its_alone_output(servers):
    """Five Forwards of different batch sizes queue behind a long prefill, one of them bad (NaN):
    the four good ones run as one stacked pass (the trace says so), each output and receipt
    input hash equal to what the non-batching server gives alone, sketches of its own rows;
    the bad one gets INVALID_ARGUMENT alone."""
    batched, trace = servers["batched"]
    alone, _ = servers["alone"]
    g = torch.Generator().manual_seed(11)
    xs = [torch.randn(b, 12, HIDDEN, generator=g) for b in (1, 2, 1, 3, 1)]
    xs[2] = xs[2] * float("nan")
    requests = [pb.ForwardRequest(session_id=os.urandom(32), start=0, end=6, hidden=wire.encode(x)) for x in xs]
    big = [("grpc.max_receive_message_length", 64 << 20)]
    with grpc.insecure_channel(batched.address, big) as ch_b, grpc.insecure_channel(alone.address) as ch_a:
        stub_b, stub_a = pb_grpc.BlockServerStub(ch_b), pb_grpc.BlockServerStub(ch_a)
        outcomes = _queued_behind_a_prefill(stub_b, g, [functools.partial(stub_b.Forward, r, timeout=60)
                                                        for r in requests])
        assert isinstance(outcomes[2], grpc.RpcError) and outcomes[2].code() == grpc.StatusCode.INVALID_ARGUMENT
        for i in (0, 1, 3, 4):
            _assert_alone(outcomes[i], stub_a.Forward(requests[i], timeout=60), pb.ForwardResponse, "hidden",
                          xs[i].shape[0])
        assert stub_b.Forward(requests[0], timeout=60).receipt.input_hash == outcomes[0].receipt.input_hash
    lines = [json.loads(x) for x in trace.read_text().splitlines()]
    assert max(x.get("batch", 1) for x in lines if x["rpc"] == "Forward") >= 4, "no Forward was batched"


def _assert_alone(got, ref, kind, field: str, rows: int) -> None:
    """A batched response equals the non-batching server's: output `field`, receipt input hash,
    and sketches of its own `rows` only (6 blocks)."""
    assert isinstance(got, kind), f"good {kind.__name__} failed: {got}"
    assert judgment.max_error(wire.decode(getattr(got, field)), wire.decode(getattr(ref, field))) < 1e-5
    assert got.receipt.input_hash == ref.receipt.input_hash
    assert tuple(wire.decode(got.sketches).shape[:2]) == (6, rows)  # its own rows only
    assert judgment.max_error(wire.decode(got.sketches), wire.decode(ref.sketches)) < 1e-4


def test_parallel_backwards_run_as_one_pass_each_with_its_alone_gradient(servers):
    """Four Backwards of different batch sizes queue behind a long prefill, one of them bad (its
    grad_output has the wrong shape): the three good ones run as one stacked pass, each input
    gradient, sketches and receipt input hash equal to what the non-batching server gives alone;
    the bad one gets INVALID_ARGUMENT alone."""
    batched, trace = servers["batched"]
    alone, _ = servers["alone"]
    g = torch.Generator().manual_seed(12)
    xs = [torch.randn(b, 10, HIDDEN, generator=g) for b in (2, 1, 1, 3)]
    gs = [torch.randn(x.shape, generator=g) for x in xs]
    gs[1] = torch.randn(1, 9, HIDDEN, generator=g)  # does not match its hidden states
    requests = [pb.BackwardRequest(session_id=os.urandom(32), start=0, end=6, hidden=wire.encode(x),
                                   grad_output=wire.encode(dy)) for x, dy in zip(xs, gs)]
    seen = len(trace.read_text().splitlines()) if trace.exists() else 0
    with grpc.insecure_channel(batched.address) as ch_b, grpc.insecure_channel(alone.address) as ch_a:
        stub_b, stub_a = pb_grpc.BlockServerStub(ch_b), pb_grpc.BlockServerStub(ch_a)
        outcomes = _queued_behind_a_prefill(stub_b, g, [functools.partial(stub_b.Backward, r, timeout=60)
                                                        for r in requests])
        assert isinstance(outcomes[1], grpc.RpcError) and outcomes[1].code() == grpc.StatusCode.INVALID_ARGUMENT
        for i in (0, 2, 3):
            _assert_alone(outcomes[i], stub_a.Backward(requests[i], timeout=60), pb.BackwardResponse,
                          "grad_input", xs[i].shape[0])
    lines = [json.loads(x) for x in trace.read_text().splitlines()[seen:]]
    assert max(x.get("batch", 1) for x in lines if x["rpc"] == "Backward") >= 3, "no Backward was batched"


def test_requests_too_big_to_share_a_pass_run_alone(servers):
    """Forwards of 8 x 40 tokens (320 > PASS_TOKENS) queued together each run alone: a batched
    pass never grows past the bound, so a paid step that arrives mid-pass waits for one request."""
    batched, trace = servers["batched"]
    g = torch.Generator().manual_seed(13)
    requests = [pb.ForwardRequest(session_id=os.urandom(32), start=0, end=6,
                                  hidden=wire.encode(torch.randn(8, 40, HIDDEN, generator=g))) for _ in range(3)]
    seen = len(trace.read_text().splitlines()) if trace.exists() else 0
    with grpc.insecure_channel(batched.address, [("grpc.max_receive_message_length", 64 << 20)]) as ch:
        stub = pb_grpc.BlockServerStub(ch)
        outcomes = _queued_behind_a_prefill(stub, g, [functools.partial(stub.Forward, r, timeout=60) for r in requests])
    assert all(isinstance(o, pb.ForwardResponse) for o in outcomes), outcomes
    lines = [json.loads(x) for x in trace.read_text().splitlines()[seen:]]
    assert [x["batch"] for x in lines if x["rpc"] == "Forward"] == [1, 1, 1]


def _queued_behind_a_prefill(stub, g, sends) -> list:
    """Occupy the compute loop with a long prefill, then call each send() from its own thread so
    the requests queue together; each outcome is the response or the gRPC error."""
    blocker = procs.Stream(stub)
    long = torch.randn(8, 1000, HIDDEN, generator=g)
    t_block = threading.Thread(target=_open, args=(blocker, os.urandom(32), 8, 1000, long))
    outcomes: list = [None] * len(sends)

    def send(i, fn):
        try:
            outcomes[i] = fn()
        except grpc.RpcError as err:
            outcomes[i] = err

    threads = [threading.Thread(target=send, args=(i, fn)) for i, fn in enumerate(sends)]
    t_block.start()
    time.sleep(0.05)  # the prefill has reached the loop
    for t in threads:
        t.start()
    for t in threads + [t_block]:
        t.join(60)
    blocker.q.put(None)
    assert not t_block.is_alive()
    return outcomes


def test_a_lone_session_does_not_wait_for_company(servers):
    """Per-step latency of one session alone on the batching server vs the non-batching one
    (interleaved rounds, medians): batching adds no wait (bound: 25% + 2 ms for noise)."""
    batched, _ = servers["batched"]
    alone, _ = servers["alone"]
    g = torch.Generator().manual_seed(9)
    times: dict[str, list[float]] = {"batched": [], "alone": []}
    with grpc.insecure_channel(batched.address) as ch_b, grpc.insecure_channel(alone.address) as ch_a:
        stubs = {"batched": pb_grpc.BlockServerStub(ch_b), "alone": pb_grpc.BlockServerStub(ch_a)}
        for _ in range(4):
            for name, stub in stubs.items():
                s = procs.Stream(stub)
                _open(s, os.urandom(32), 1, 64, torch.randn(1, 4, HIDDEN, generator=g))
                for step in range(1, 21):
                    req = pb.InferenceRequest(hidden=wire.encode(torch.randn(1, 1, HIDDEN, generator=g)), step=step)
                    t0 = time.perf_counter()
                    s.send(req)
                    times[name].append(time.perf_counter() - t0)
                s.q.put(None)
    med = {k: statistics.median(v) for k, v in times.items()}
    assert med["batched"] <= 1.25 * med["alone"] + 0.002, med
