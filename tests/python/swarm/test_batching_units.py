"""Unit tests of batched sessions' pieces: the queue's batch-mate rule, the compute loop's batch
run, SpanModel.forward_many against one session alone, and node.batching.run_steps on an
in-process BlockServicer (its bad step fails alone)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

import pytest
import torch

from node.runtime import Batchable, ComputeLoop, _Task
from node.scheduler import SchedulerConfig, Tier, TieredQueue
from pollen import judgment, wire

TOL = 1e-5  # relative per-token error allowed between batched and alone (BLAS blocking only)


# ---- TieredQueue.take -------------------------------------------------------------------------
def _queue(*entries):
    q = TieredQueue(SchedulerConfig(max_free_wait_s=100, paid_burst=100))
    for i, (name, tier) in enumerate(entries):
        q.put(name, tier, now=float(i))
    return q


def test_take_paid_mates_oldest_first_up_to_the_limit():
    q = _queue(("a1", Tier.PAID), ("b", Tier.PAID), ("a2", Tier.PAID), ("a3", Tier.PAID))
    assert q.pop(10.0)[0] == "a1"
    got = q.take(lambda n: n.startswith("a"), limit=1, lead=Tier.PAID)
    assert got == [("a2", Tier.PAID)]
    assert q._paid_in_a_row == 2  # the mate counts towards the share bound
    assert [q.pop(10.0)[0] for _ in range(2)] == ["b", "a3"]
    assert q.served == {Tier.PAID: 4, Tier.FREE: 0}


def test_paid_batches_count_towards_the_free_tiers_share():
    q = TieredQueue(SchedulerConfig(max_free_wait_s=100, paid_burst=4))
    q.put("free", Tier.FREE, now=0.0)
    for i in range(8):
        q.put(f"a{i}", Tier.PAID, now=0.0)
    q.pop(0.0)
    assert len(q.take(lambda n: n.startswith("a"), 3, Tier.PAID)) == 3  # 4 paid tasks ran
    assert q.pop(0.0)[0] == "free"


def test_free_mates_do_not_jump_ahead_of_other_paid_work():
    q = _queue(("a-paid", Tier.PAID), ("a-free", Tier.FREE), ("b-paid", Tier.PAID))
    q.pop(10.0)
    assert q.take(lambda n: n.startswith("a"), 8, Tier.PAID) == []  # b-paid would run first
    q.pop(10.0)  # b-paid
    q.put("a-paid2", Tier.PAID, now=11.0)
    q.pop(11.0)  # a-paid2 leads; nothing paid is left unmatched now
    assert q.take(lambda n: n.startswith("a"), 8, Tier.PAID) == [("a-free", Tier.FREE)]


def test_paid_mates_join_a_free_lead():
    q = _queue(("a-free", Tier.FREE), ("a-paid", Tier.PAID), ("b-paid", Tier.PAID), ("a-free2", Tier.FREE))
    q._paid_in_a_row = 100  # the share bound makes the free task lead
    assert q.pop(10.0) == ("a-free", Tier.FREE)
    got = q.take(lambda n: n.startswith("a"), 8, Tier.FREE)
    assert got == [("a-paid", Tier.PAID), ("a-free2", Tier.FREE)]
    assert len(q) == 1


# ---- ComputeLoop batches ----------------------------------------------------------------------
def test_loop_runs_queued_compatible_tasks_as_one_batch():
    loop, stop, calls = ComputeLoop(), threading.Event(), []
    gate = threading.Event()
    runner = threading.Thread(target=loop.run, args=(stop, lambda: None, 0.05))
    runner.start()
    results = {}

    def run_many(items):
        calls.append(list(items))
        return [ValueError("bad") if i == 2 else i * 10 for i in items]

    def submit(i, key):
        try:
            results[i] = loop.submit(lambda: ("alone", i), Tier.FREE, Batchable(key, i, run_many, limit=8))
        except ValueError as exc:
            results[i] = exc

    try:
        blocker = threading.Thread(target=loop.submit, args=(gate.wait,))
        blocker.start()
        while not loop.served[Tier.FREE]:
            time.sleep(0.01)
        threads = [threading.Thread(target=submit, args=(i, "k" if i < 4 else "other")) for i in range(5)]
        for t in threads:
            t.start()
        while len(loop._queue) < 5:
            time.sleep(0.01)
        gate.set()
        for t in threads + [blocker]:
            t.join(10)
    finally:
        stop.set()
        runner.join(10)
    assert sorted(map(sorted, calls)) == [[0, 1, 2, 3]]  # one batch; the odd key ran alone
    assert results[4] == ("alone", 4)
    assert [results[i] for i in (0, 1, 3)] == [0, 10, 30]
    assert isinstance(results[2], ValueError)  # only that task failed


def test_a_batch_takes_the_oldest_mates_that_fit_its_budget():
    """Costs 100 (lead), 200, 100, 50, 300 under a budget of 256: the lead takes the 100 and the
    50 (the 200 does not fit beside it); the 200 then runs alone, and so does the 300, which is
    over budget by itself."""
    loop = ComputeLoop()
    for i, cost in enumerate((100, 200, 100, 50, 300)):
        batch = Batchable("k", i, lambda items: items, limit=8, cost=cost, budget=256)
        loop._queue.put(_Task(lambda: None, Future(), batch), Tier.FREE, float(i))
    runs = [[t.batch.item for t in loop._next(0.0)] for _ in range(3)]
    assert runs == [[0, 2, 3], [1], [4]]
    assert loop._next(0.0) == []


def test_a_lone_task_runs_alone_through_its_own_fn():
    loop, stop = ComputeLoop(), threading.Event()
    runner = threading.Thread(target=loop.run, args=(stop, lambda: None, 0.05))
    runner.start()
    try:
        never = Batchable("k", 0, lambda items: pytest.fail("no batch for one task"))
        assert loop.submit(lambda: "alone", Tier.PAID, never) == "alone"
    finally:
        stop.set()
        runner.join(10)


# ---- SpanModel.forward_many -------------------------------------------------------------------
def _prefilled(span, rows, lens, seed):
    g = torch.Generator().manual_seed(seed)
    pairs = []
    with torch.no_grad():
        for b, n in zip(rows, lens):
            x = torch.randn(b, n, span.hidden_size, generator=g)
            a, m = span.new_cache(b, 32), span.new_cache(b, 32)
            span(x, a)
            span(x, m)
            pairs.append((a, m))
    return pairs, g


@pytest.mark.parametrize("name", ["tiny_llama", "tiny_bloom"])
@pytest.mark.parametrize("T", [1, 3])
def test_forward_many_equals_each_session_alone(request, name, T):
    from pollen.model import load_span

    span = load_span(request.getfixturevalue(name), 0, 6)
    rows, lens = [1, 2, 1, 3], [5, 1, 9, 2]  # ragged cache lengths, different batch sizes
    pairs, g = _prefilled(span, rows, lens, seed=T)
    with torch.no_grad():
        for _ in range(3):
            xs = [torch.randn(b, T, span.hidden_size, generator=g) for b in rows]
            traces_alone, traces = [[] for _ in rows], [[] for _ in rows]
            alone = [span(x, a, 1, 5, trace=t) for x, (a, _), t in zip(xs, pairs, traces_alone)]
            many = span.forward_many(xs, [m for _, m in pairs], 1, 5, traces)
            for x, y, ya, t, ta in zip(xs, many, alone, traces, traces_alone):
                assert y.shape == x.shape
                assert judgment.max_error(y, ya) < TOL
                assert [s.shape for s in t] == [s.shape for s in ta] == [(x.shape[0], T, judgment.SKETCH_DIM)] * 4
                assert judgment.max_error(torch.stack(t), torch.stack(ta)) < TOL
    for (a, m), n in zip(pairs, lens):
        assert a.length == m.length == n + 3 * T
        for ca, cm in ((a.k, m.k), (a.v, m.v)):  # each session's new keys/values in its own cache
            assert (ca - cm).abs().max() <= TOL * ca.abs().max()


def test_forward_many_refuses_mixed_sequence_lengths(tiny_llama):
    from pollen.model import load_span

    span = load_span(tiny_llama, 0, 2)
    caches = [span.new_cache(1, 8), span.new_cache(1, 8)]
    with pytest.raises(ValueError, match="one sequence length"):
        span.forward_many([torch.zeros(1, 1, 64), torch.zeros(1, 2, 64)], caches)


# ---- node.batching.run_steps on an in-process servicer ----------------------------------------
def _servicer(path):
    from node.config import ServerConfig
    from node.server import BlockServicer
    from node.signing import ReceiptSigner
    from pollen.model import load_span
    from pollen.receipts import ReceiptDomain

    cfg = ServerConfig(model_path=str(path), start=0, end=6).validate()
    return BlockServicer(cfg, load_span(path, 0, 6), ReceiptSigner(None, ReceiptDomain(1, cfg.court)), 1.0)


def _session(srv, i, length):
    from node.server import Session

    cache = srv.span.new_cache(1, length)
    return Session(bytes([i]) * 32, 0, 6, 1, length, False, cache, 0, None)


def _request(x, step):
    from pollen.proto import swarm_pb2 as pb

    return pb.InferenceRequest(hidden=wire.encode(x), step=step)


def test_run_steps_each_session_as_alone_and_a_bad_step_fails_alone(tiny_llama):
    from node import batching
    from node.errors import SessionProtocolError

    srv = _servicer(tiny_llama)
    g = torch.Generator().manual_seed(3)
    alone = [_session(srv, i, 16) for i in range(3)]
    batched = [_session(srv, i, 16) for i in range(3)]
    prompts = [torch.randn(1, n, 64, generator=g) for n in (2, 5, 3)]
    for s_a, s_b, p in zip(alone, batched, prompts):  # prefill each alone (different T)
        srv._step(s_a, _request(p, 0))
        srv._step(s_b, _request(p, 0))
    xs = [torch.randn(1, 1, 64, generator=g) for _ in range(3)]
    requests = [_request(xs[0], 1), _request(xs[1], 7), _request(xs[2], 1)]  # session 1: wrong step
    outcomes = batching.run_steps(srv, list(zip(batched, requests)))
    assert isinstance(outcomes[1], SessionProtocolError)
    assert batched[1].step == 1 and batched[1].cache.length == 5  # untouched
    for i in (0, 2):
        ref = srv._step(alone[i], _request(xs[i], 1))
        got = outcomes[i]
        assert judgment.max_error(wire.decode(got.hidden), wire.decode(ref.hidden)) < TOL
        assert judgment.max_error(wire.decode(got.sketches), wire.decode(ref.sketches)) < TOL
        assert got.receipt.input_hash == ref.receipt.input_hash  # the same per-session hash chain
        assert (got.receipt.step, got.receipt.session_id) == (1, bytes([i]) * 32)
        assert batched[i].step == 2 and batched[i].cache.length == alone[i].cache.length


def test_steps_that_cannot_share_a_batch_get_no_key(tiny_llama):
    from node import batching

    srv = _servicer(tiny_llama)
    s = _session(srv, 1, 8)
    x = torch.zeros(1, 1, 64)
    assert batching.step_key(srv, s, _request(x, 0)) is not None
    with_prompts = _request(x, 0)
    with_prompts.prompts.CopyFrom(wire.encode(torch.zeros(6, 1, 1, 64)))
    assert batching.step_key(srv, s, with_prompts) is None
    assert batching.step_key(srv, s, _request(torch.zeros(1, 2, 64), 0)) != batching.step_key(srv, s, _request(x, 0))
    srv.cfg.max_batch_sessions = 1
    assert batching.batchable(srv, s, _request(x, 0)) is None


def _run_loop():
    loop, stop = ComputeLoop(), threading.Event()
    runner = threading.Thread(target=loop.run, args=(stop, lambda: None, 0.05))
    runner.start()
    return loop, stop, runner


def test_a_step_expecting_company_waits_briefly_and_batches_with_it():
    loop, stop, runner = _run_loop()
    calls, results = [], {}

    def run_many(items):
        calls.append(list(items))
        return list(items)

    def submit(i, expect, wait_s):
        results[i] = loop.submit(lambda: ("alone", i), Tier.FREE, Batchable("k", i, run_many, 8, expect, wait_s))

    try:
        first = threading.Thread(target=submit, args=(0, 1, 5.0))
        first.start()
        time.sleep(0.2)  # the first waits: it expects one more
        t0 = time.monotonic()
        submit(1, 1, 5.0)
        first.join(10)
        assert time.monotonic() - t0 < 2.0  # the wait ended when company came, not at 5 s
        assert calls == [[0, 1]] and results == {0: 0, 1: 1}
        t0 = time.monotonic()
        submit(2, 1, 0.1)  # expected company never comes: bounded wait, then alone
        assert results[2] == ("alone", 2) and time.monotonic() - t0 < 2.0
    finally:
        stop.set()
        runner.join(10)
