"""Pay-per-use end to end on a real anvil with three `pollen node` processes (tiny random Llama):

p1 serves [0, 3) paid-only at 1000 wei per block-token with a small credit limit; p2 serves
[3, 6) at 2000 with a free tier; p3 serves [0, 6) for free. A paying client's vouchers follow the
receipts it verified and the daemons redeem them on chain; a client that stops paying is cut off
at the credit limit; a non-paying client is refused by the paid-only server and served by the
free one. The escrow's books balance throughout.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import torch

from client.errors import RequestRejected
from client.payer import Payer
from demo.procs import ROOT
from pollen.payments import Escrow
from trusthelp import open_client, tiny_stack

P1_PRICE, P2_PRICE = 1000, 2000
P1_LIMIT = P1_PRICE * 3 * 7  # one 6-token prefill of 3 blocks plus one decode token
ETHER = 10**18


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = tiny_stack(tmp_path_factory, "economy", seed=3)
    try:
        flags = {"p1": ["--blocks", "0:3", "--price-wei", str(P1_PRICE), "--credit-limit-wei", str(P1_LIMIT),
                        "--paid-only"],
                 "p2": ["--blocks", "3:6", "--price-wei", str(P2_PRICE), "--free-tier"],
                 "p3": ["--blocks", "0:6"]}
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

    model.use_payer(payer_for(chain))
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
    p1, p2 = stack.by_name["p1"], stack.by_name["p2"]
    from client.onchain import payer_for

    chain, _, model, _ = open_client(stack, 7, allow=[p1.operator, p2.operator])
    _fund(chain, [p1.operator, p2.operator], ETHER // 20)
    honest = payer_for(chain)
    model.use_payer(Freeloader(chain.signing_key, honest.domain, honest.price_of))
    try:
        with pytest.raises(RequestRejected, match="payment required.*credit limit"):
            model.generate(torch.tensor([[1, 2, 3, 4, 5, 6]]), max_new_tokens=6)
    finally:
        model.close()
    # p1 served it steps worth at most its credit limit (plus the step that crossed it)
    assert _escrow(chain).contract.functions.redeemed(chain.address, p1.operator).call() == 0


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
