"""Pay-per-use end to end on a real anvil with three `pollen node` processes (tiny random Llama):

p1 serves [0, 3) paid-only at 1000 wei per block-token with a small credit limit; p2 serves
[3, 6) at 2000 with a free tier; p3 serves [0, 6) for free. A paying client's vouchers follow the
receipts it verified and the daemons redeem them on chain; a client that stops paying is cut off
at the credit limit; a non-paying client is refused by the paid-only server and served by the
free one. p4 serves [0, 6) at 1500 with a free tier, for the priority test: under a flood of
free-tier work, a paying client's steps jump the queue while the free tier still progresses.
The escrow's books balance throughout.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import threading
import time

import pytest
import torch

from client.errors import RequestRejected
from client.payer import Payer
from devstack.procs import ROOT
from pollen.escrow import Escrow
from trusthelp import open_client, tiny_stack

P1_PRICE, P2_PRICE, P4_PRICE = 1000, 2000, 1500
FLOODERS = 6  # free clients keeping p4 busy in the priority test
P1_LIMIT = P1_PRICE * 3 * 7  # one 6-token prefill of 3 blocks plus one decode token
ETHER = 10**18


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = tiny_stack(tmp_path_factory, "economy", seed=3)
    try:
        flags = {"p1": ["--blocks", "0:3", "--price-wei", str(P1_PRICE), "--credit-limit-wei", str(P1_LIMIT),
                        "--paid-only"],
                 "p2": ["--blocks", "3:6", "--price-wei", str(P2_PRICE), "--free-tier"],
                 "p3": ["--blocks", "0:6"],
                 "p4": ["--blocks", "0:6", "--price-wei", str(P4_PRICE), "--free-tier"]}
        s.by_name = {name: s.daemon(name, i + 1, *f, "--redeem-interval-s", "1")
                     for i, (name, f) in enumerate(flags.items())}
        for d in s.by_name.values():
            d.start()
        for d in s.by_name.values():
            d.wait_event("ready", 150)
        yield s
    finally:
        s.stop()


def _escrow(chain) -> Escrow:
    return Escrow(chain, chain.deployment.contracts["PaymentEscrow"])


def _fund(chain, servers, each: int) -> None:
    """Deposit and set aside `each` wei in the client's lane for every server."""
    _escrow(chain).allocate({s: each for s in servers}, value=each * len(servers))


def _paying_client(stack, key_index: int, each: int, allow):
    chain, _, model, _ = open_client(stack, key_index, allow=allow)
    _fund(chain, allow, each)
    from client.onchain import payer_for

    model.use_payer(payer_for(chain, stack.workdir / f"client{key_index}" / "payer.json"))  # tabs kept across runs
    return chain, model


def test_paying_client_pays_what_it_verified_and_daemons_redeem(stack):
    p1, p2 = stack.by_name["p1"], stack.by_name["p2"]
    assert p1.wait_event("price_set", 30)["price_wei"] == P1_PRICE
    chain, model = _paying_client(stack, 6, ETHER // 20, allow=[p1.operator, p2.operator])
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    try:
        model.generate(ids, max_new_tokens=4)
        tokens = 6 + 1 + 1 + 1  # the prompt, then one token per step (the last sample is not sent)
        owed = model.payer.owed()
        assert owed == {p1.operator.lower(): P1_PRICE * 3 * tokens, p2.operator.lower(): P2_PRICE * 3 * tokens}
        model.generate(ids, max_new_tokens=2)  # its first requests carry the previous session's last voucher
        total = P1_PRICE * 3 * (tokens + 7)
        assert model.payer.owed()[p1.operator.lower()] == total
    finally:
        model.close()
    escrow = _escrow(chain)
    p1.wait_event("redeemed", 30)
    # everything but the last step's voucher reached p1 (it rides on the next request) and is redeemed
    held = P1_PRICE * 3 * (tokens + 6)
    deadline = time.monotonic() + 30
    while escrow.contract.functions.redeemed(chain.address, p1.operator).call() < held:
        assert time.monotonic() < deadline, "p1 did not redeem the vouchers it holds"
        time.sleep(0.5)
    redeemed = escrow.contract.functions.redeemed(chain.address, p1.operator).call()
    assert redeemed == held <= total  # never more than the client signed for
    fee = redeemed * escrow.fee_bps() // 10_000
    assert escrow.earned(p1.operator) == redeemed - fee > 0
    assert escrow.contract.functions.auditPool().call() >= fee  # the protocol fee funds audits
    out = subprocess.run([sys.executable, "-m", "pollen.cli", "node", "withdraw", "--deployment",
                          str(stack.deployment_path), "--key-file", str(stack.workdir / "nodes" / "p1" / "operator.key")],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "earned in PaymentEscrow" in out.stdout, out.stderr[-2000:]
    assert escrow.earned(p1.operator) == 0


class Freeloader(Payer):
    """Names itself and binds sessions, but never sends a voucher."""

    def _due(self, operator):
        return None


def test_a_client_that_stops_paying_is_cut_off_at_the_credit_limit(stack):
    """The freeloader is refused once it owes more than p1's credit limit; a paying session open
    on the same servers at that moment carries on."""
    p1, p2 = stack.by_name["p1"], stack.by_name["p2"]
    from client.onchain import payer_for

    # an honest paying session on the same servers, open (paused mid-generation) across the cut-off
    _, other = _paying_client(stack, 6, ETHER // 20, allow=[p1.operator, p2.operator])
    cut_off, seen, out = threading.Event(), [], {}

    def pause_after_two(tokens):
        seen.append(tokens)
        if len(seen) == 2:
            cut_off.wait(120)

    def run_other():
        try:
            out["ids"] = other.generate(torch.tensor([[7, 8, 9]]), max_new_tokens=8, streamer=pause_after_two)
        except Exception as exc:  # reported below
            out["error"] = exc

    worker = threading.Thread(target=run_other, daemon=True)
    worker.start()
    chain, _, model, _ = open_client(stack, 7, allow=[p1.operator, p2.operator])
    _fund(chain, [p1.operator, p2.operator], ETHER // 20)
    honest = payer_for(chain)
    model.use_payer(Freeloader(chain.signing_key, honest.domain, honest.price_of))
    try:
        deadline = time.monotonic() + 60
        while len(seen) < 2 and "error" not in out:
            assert time.monotonic() < deadline, "the other session never started"
            time.sleep(0.05)
        with pytest.raises(RequestRejected, match="payment required.*credit limit"):
            model.generate(torch.tensor([[1, 2, 3, 4, 5, 6]]), max_new_tokens=6)
    finally:
        cut_off.set()
        worker.join(120)
        model.close()
        other.close()
    assert "error" not in out, out.get("error")
    assert out["ids"].shape[1] == 3 + 8  # the paying session open across the cut-off went on to the end
    # p1 served it steps worth at most its credit limit (plus the step that crossed it)
    assert _escrow(chain).contract.functions.redeemed(chain.address, p1.operator).call() == 0


def test_lanes_are_funded_before_the_first_session_with_each_server(stack):
    """payer_for(chain, lane_wei=X): no manual allocate; each server on the route gets a lane of X
    before its first request, once; the session pays exactly as with hand-made lanes."""
    from client.onchain import payer_for

    p1, p2 = stack.by_name["p1"], stack.by_name["p2"]
    chain, _, model, _ = open_client(stack, 8, allow=[p1.operator, p2.operator])
    escrow, lane = _escrow(chain), ETHER // 100
    assert escrow.lane(chain.address, p1.operator)["amount"] == 0
    model.use_payer(payer_for(chain, stack.workdir / "client8" / "payer.json", lane_wei=lane))
    try:
        model.generate(torch.tensor([[4, 5, 6]]), max_new_tokens=3)
        model.generate(torch.tensor([[4, 5, 6]]), max_new_tokens=2)  # a second session: no new top-up
        owed = model.payer.owed()
    finally:
        model.close()
    assert model.payer.fund.sent == 2 * lane  # one lane per server, sent once
    assert {s: escrow.lane(chain.address, s)["amount"] for s in (p1.operator, p2.operator)} == \
        {p1.operator: lane, p2.operator: lane}
    tokens = 3 + 1 + 1 + 3 + 1  # two sessions: prompt, then one token per step (last sample unsent)
    assert owed == {p1.operator.lower(): P1_PRICE * 3 * tokens, p2.operator.lower(): P2_PRICE * 3 * tokens}


def test_free_tier_and_paid_only_servers(stack):
    p1, p2, p3 = (stack.by_name[n] for n in ("p1", "p2", "p3"))
    _, _, refused, _ = open_client(stack, 8, allow=[p1.operator, p2.operator])
    try:
        with pytest.raises(RequestRejected, match="payment required.*paying clients only"):
            refused.generate(torch.tensor([[3, 4, 5]]), max_new_tokens=2)
    finally:
        refused.close()
    _, _, free, _ = open_client(stack, 8, allow=[p3.operator])
    try:
        out = free.generate(torch.tensor([[3, 4, 5]]), max_new_tokens=3)
        assert out.shape[1] == 6
    finally:
        free.close()


def test_escrow_books_balance(stack):
    chain = stack.chain(0)
    escrow = _escrow(chain)
    balance = chain.w3.eth.get_balance(escrow.address)
    clients = [stack.chain(k).address for k in (6, 7, 8)]
    servers = [stack.by_name[n].operator for n in ("p1", "p2", "p3")]
    held = sum(escrow.balance(c) for c in clients)
    held += sum(escrow.lane(c, s)["amount"] for c in clients for s in servers)
    earned = sum(escrow.earned(s) for s in servers)
    assert balance == held + earned + escrow.contract.functions.auditPool().call()


def test_node_status_shows_price_and_earnings(stack):
    out = subprocess.run([sys.executable, "-m", "pollen.cli", "node", "status", "--deployment",
                          str(stack.deployment_path), "--state-dir", str(stack.workdir / "nodes" / "p2"), "--json"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    info = __import__("json").loads(out.stdout)
    assert info["price_wei"] == P2_PRICE and info["credit_limit_wei"] > 0
    assert info["earned"] > 0 and info["unredeemed"] >= 0  # p2 was paid by the first client


def _step_latencies(model, n_new: int) -> list[float]:
    """Seconds per decode step of one greedy generation (a streamer's put marks each token)."""
    marks = []

    class Clock:
        def put(self, _):
            marks.append(time.perf_counter())

        def end(self):
            pass

    model.generate(torch.tensor([[11, 12, 13, 14]]), max_new_tokens=n_new, streamer=Clock())
    return [b - a for a, b in zip(marks[1:], marks[2:])]  # marks[0] is the prompt


def _flood(model, stop: threading.Event, done: list) -> None:
    """Free-tier parallel forwards (8 x 128 tokens) back to back until `stop`; a failure is
    recorded in `done` as the exception."""
    ids = torch.randint(0, int(model.config.vocab_size), (8, 128), generator=torch.Generator().manual_seed(1))
    try:
        while not stop.is_set():
            model(ids)
            done.append(time.perf_counter())
    except Exception as exc:  # reported by the test, not lost in a thread
        done.append(exc)


def _under_flood(flooders, measured, n_new: int) -> tuple[list[float], int]:
    """The measured model's step latencies while every flooder floods p4; forwards finished meanwhile."""
    stop, done = threading.Event(), []
    threads = [threading.Thread(target=_flood, args=(m, stop, done), daemon=True) for m in flooders]
    for t in threads:
        t.start()
    time.sleep(1.0)  # the queue is full of free work before the first measured step
    try:
        steps = _step_latencies(measured, n_new)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    errors = [d for d in done if isinstance(d, Exception)]
    if errors:
        raise errors[0]
    return steps, len(done)


def test_paid_steps_jump_a_flood_of_free_work_and_the_free_tier_still_progresses(stack):
    """The scheduler on a real daemon (node/scheduler.py): six free clients keep p4's compute
    loop full of parallel forwards. A free session's decode steps queue behind them (FIFO within
    the tier); a paying session's steps run next (paid first), so they are several times faster,
    and the flood's forwards keep completing meanwhile (the free tier is not starved). Measured
    in two phases, so the two sessions never share a batched step."""
    p4 = stack.by_name["p4"]
    assert p4.wait_event("price_set", 30)["price_wei"] == P4_PRICE
    flooders = [open_client(stack, 5, allow=[p4.operator])[2] for _ in range(FLOODERS)]
    _, _, free, _ = open_client(stack, 5, allow=[p4.operator])
    _, paid = _paying_client(stack, 9, ETHER // 20, allow=[p4.operator])
    try:
        quiet = statistics.median(_step_latencies(paid, 6))
        free_steps, free_done = _under_flood(flooders, free, 12)
        paid_steps, paid_done = _under_flood(flooders, paid, 12)
        assert paid.payer.owed()[p4.operator.lower()] > 0  # it really was a paying session
    finally:
        for m in [*flooders, free, paid]:
            m.close()
    free_median, paid_median = statistics.median(free_steps), statistics.median(paid_steps)
    print(f"p4 step latency: quiet {quiet * 1e3:.1f} ms, under flood free {free_median * 1e3:.1f} ms, "
          f"paid {paid_median * 1e3:.1f} ms; forwards done meanwhile: {free_done} / {paid_done}")
    assert paid_median * 2 < free_median, (paid_steps, free_steps)
    assert paid_done > 0 and free_done > 0  # the free tier progressed in both phases
