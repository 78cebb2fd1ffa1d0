"""The server's payment policy (node/billing.py) over a real VoucherBook and a fake escrow state:
free tier, paid tier, refusals, and the attacks a client or a stranger could try."""

from __future__ import annotations

import os

import pytest
from eth_account import Account

from node.billing import Billing, CachedEscrowState, PaymentRequired, Terms, min_credit_limit
from node.scheduler import Tier
from pollen.billing import payment_message, read_payment, session_binding
from pollen.payments import ClientTab, PaymentDomain, VoucherBook, VoucherError

DOMAIN = PaymentDomain(chain_id=31337, escrow="0x" + "ee" * 20)
PRICE = 10  # wei per block per token


class FakeEscrow:
    def __init__(self):
        self.deposits, self.redeemed_, self.reads = {}, {}, 0

    def available(self, client, server):
        self.reads += 1
        return self.deposits.get(client, 0)

    def redeemed(self, client, server):
        return self.redeemed_.get((client, server), 0)

    def reclaim_at(self, client, server):
        return 0


@pytest.fixture
def setup(tmp_path):
    server, client, stranger = Account.create(), Account.create(), Account.create()
    escrow = FakeEscrow()
    escrow.deposits[client.address] = 10_000
    limit = min_credit_limit(PRICE, 4, 3)  # one step of 4 blocks x 3 tokens
    book = VoucherBook(server.address, DOMAIN, escrow, tmp_path / "book.json", credit_limit=limit)
    billing = Billing(book, DOMAIN, Terms(PRICE, limit, free_tier=True))
    tab = ClientTab(client.key, server.address, DOMAIN, PRICE)
    return billing, server, client, stranger, tab, escrow


def pay(client, server, sid, voucher=None):
    return payment_message(client.key, client.address, sid, server.address, DOMAIN, voucher)


def test_free_paid_and_behind(setup):
    billing, server, client, _, tab, _ = setup
    sid = os.urandom(32)
    assert billing.admit(None, sid) == (None, Tier.FREE)
    payer, tier = billing.admit(pay(client, server, sid), sid)
    assert (payer, tier) == (client.address, Tier.PAID)
    billing.charge(payer, 4, 3)  # step 0 served: 120 wei owed, within the one-step limit
    billing.require_current(payer)
    billing.charge(payer, 4, 3)  # step 1 served without a voucher for step 0
    with pytest.raises(PaymentRequired, match="owes 240 wei"):
        billing.require_current(payer)
    tab.charge(os.urandom(32), 4, 3)
    tab.charge(os.urandom(32), 4, 3)  # the client verified both receipts and pays
    assert billing.admit(pay(client, server, sid, tab.voucher()), sid) == (client.address, Tier.PAID)


def test_paid_only_server_refuses_free_requests(setup):
    billing, *_ = setup
    billing.terms = Terms(PRICE, billing.terms.credit_limit, free_tier=False)
    with pytest.raises(PaymentRequired, match="paying clients only"):
        billing.admit(None, os.urandom(32))


def test_a_stranger_cannot_bill_someone_elses_tab(setup):
    """The attack: name a rich client as payer to get paid-tier service on its account."""
    billing, server, client, stranger, _, _ = setup
    sid = os.urandom(32)
    forged = pay(stranger, server, sid)
    forged.client = client.address  # claims to be the client, signs with its own key
    with pytest.raises(PaymentRequired, match="not signed by the payer"):
        billing.admit(forged, sid)
    replayed = pay(client, server, os.urandom(32))  # a real binding, for another session
    with pytest.raises(PaymentRequired, match="not signed by the payer"):
        billing.admit(replayed, sid)


def test_vouchers_over_deposit_or_for_another_server_are_refused(setup):
    billing, server, client, stranger, _, escrow = setup
    sid = os.urandom(32)
    rich = ClientTab(client.key, server.address, DOMAIN, 10**6)
    rich.charge(os.urandom(32), 4, 3)  # 12e6 wei > the 10,000 deposited
    with pytest.raises(PaymentRequired, match="over deposit"):
        billing.admit(pay(client, server, sid, rich.voucher()), sid)
    other = ClientTab(client.key, stranger.address, DOMAIN, PRICE)
    other.charge(os.urandom(32), 1, 1)
    with pytest.raises(PaymentRequired, match="made out to"):
        billing.admit(pay(client, server, sid, other.voucher()), sid)


def test_binding_and_payment_parsing_errors_are_named():
    client, server = Account.create(), Account.create()
    sid = os.urandom(32)
    msg = payment_message(client.key, client.address, sid, server.address, DOMAIN)
    assert read_payment(msg, sid, server.address, DOMAIN) == (client.address, None)
    msg.voucher = b"{not json"
    with pytest.raises(VoucherError, match="not JSON"):
        read_payment(msg, sid, server.address, DOMAIN)
    with pytest.raises(VoucherError, match="32 bytes"):
        session_binding(b"short", server.address, DOMAIN)
    msg.client = "nobody"
    with pytest.raises(VoucherError, match="not an address"):
        read_payment(msg, sid, server.address, DOMAIN)


def test_escrow_reads_are_cached_until_refresh():
    inner, now = FakeEscrow(), [0.0]
    inner.deposits["c"] = 5
    cached = CachedEscrowState(inner, ttl_s=30, clock=lambda: now[0])
    assert [cached.available("c", "s") for _ in range(3)] == [5, 5, 5] and inner.reads == 1
    now[0] = 31.0
    cached.available("c", "s")
    cached.refresh()
    cached.available("c", "s")
    assert inner.reads == 3
