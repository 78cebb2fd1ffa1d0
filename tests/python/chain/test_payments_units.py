"""pollen.payments without a chain: the voucher digest against eth-account's independent
EIP-712 encoder, malformed input, the client's tab, and the server's voucher book over a fake
escrow state (the chain side is in test_payments_chain)."""

from __future__ import annotations

import json

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from hypothesis import given, settings
from hypothesis import strategies as st

from pollen.payments import (ZERO_CHAIN, ClientTab, PaymentDomain, SignedVoucher, Voucher, VoucherBook,
                             VoucherError, chain_receipt, recover_voucher_signer, sign_voucher, step_cost)

CLIENT = Account.from_key(b"\x21" * 32)
OTHER = Account.from_key(b"\x22" * 32)
SERVER = Account.from_key(b"\x23" * 32).address
DOMAIN = PaymentDomain(chain_id=31337, escrow="0x" + "e5" * 20)


class FakeEscrow:
    """What a VoucherBook reads from chain (each client's lane for the book's server), set by the test."""

    def __init__(self, deposit=10**18):
        self.deposits = {CLIENT.address: deposit, OTHER.address: deposit}
        self.done = {}
        self.reclaims = {}

    def available(self, client, server):
        return self.deposits.get(client, 0)

    def redeemed(self, client, server):
        return self.done.get((client, server), 0)

    def reclaim_at(self, client, server):
        return self.reclaims.get(client, 0)


def signed(cumulative, client=CLIENT, server=SERVER, domain=DOMAIN, key=None):
    return sign_voucher(Voucher(client.address, server, cumulative, b"\x05" * 32), domain, (key or client).key)


@pytest.fixture
def book(tmp_path):
    return VoucherBook(SERVER, DOMAIN, FakeEscrow(), tmp_path / "vouchers.json", credit_limit=100)


# ------------------------------------------------------------------ typed data


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**256 - 1), st.binary(min_size=32, max_size=32), st.integers(1, 2**64))
def test_digest_matches_eth_account_typed_data(cumulative, receipts, chain_id):
    dom = PaymentDomain(chain_id=chain_id, escrow=DOMAIN.escrow)
    v = Voucher(CLIENT.address, SERVER, cumulative, receipts)
    expected = Account.sign_message(encode_typed_data(full_message=v.typed_data(dom)), CLIENT.key)
    assert sign_voucher(v, dom, CLIENT.key).signature == bytes(expected.signature)
    assert recover_voucher_signer(sign_voucher(v, dom, CLIENT.key), dom) == CLIENT.address


def test_other_domain_recovers_someone_else():
    s = signed(5)
    for dom in (PaymentDomain(1, DOMAIN.escrow), PaymentDomain(DOMAIN.chain_id, "0x" + "e6" * 20)):
        assert recover_voucher_signer(s, dom) != CLIENT.address


@pytest.mark.parametrize("fields, problem", [
    (dict(cumulative=-1), "uint256"), (dict(cumulative=2**256), "uint256"), (dict(cumulative=1.5), "uint256"),
    (dict(receipts=b"\x00" * 31), "32 bytes"), (dict(client="0x1234"), "client is not an address"),
    (dict(server="nope"), "server is not an address"),
])
def test_malformed_vouchers_rejected(fields, problem):
    base = dict(client=CLIENT.address, server=SERVER, cumulative=1, receipts=ZERO_CHAIN)
    with pytest.raises(VoucherError, match=problem):
        Voucher(**{**base, **fields})


def test_json_round_trip_and_bad_json():
    s = signed(10**20)
    assert SignedVoucher.from_json(json.loads(json.dumps(s.to_json()))) == s
    with pytest.raises(VoucherError, match="cannot parse"):
        SignedVoucher.from_json({"client": CLIENT.address})
    with pytest.raises(VoucherError, match="65 bytes"):
        recover_voucher_signer(SignedVoucher(s.voucher, b"\x01" * 64), DOMAIN)


def test_receipt_chain_commits_to_order_and_costs():
    a, b = b"\x01" * 32, b"\x02" * 32
    assert chain_receipt(chain_receipt(ZERO_CHAIN, a), b) != chain_receipt(chain_receipt(ZERO_CHAIN, b), a)
    with pytest.raises(VoucherError, match="32 bytes"):
        chain_receipt(ZERO_CHAIN, b"\x01")
    assert step_cost(7, 4, 3) == 84
    with pytest.raises(VoucherError, match="tokens"):
        step_cost(7, 4, -1)


# ------------------------------------------------------------------ client tab


def test_tab_accumulates_verified_steps():
    tab = ClientTab(CLIENT.key, SERVER, DOMAIN, price=10)
    digests = [bytes([i]) * 32 for i in range(1, 4)]
    for d in digests:
        tab.charge(d, blocks=4, tokens=2)
    v = tab.voucher()
    chain = ZERO_CHAIN
    for d in digests:
        chain = chain_receipt(chain, d)
    assert v.voucher.cumulative == 3 * 10 * 4 * 2 and v.voucher.receipts == chain
    assert recover_voucher_signer(v, DOMAIN) == CLIENT.address
    assert tab.pay(b"\x09" * 32, 1, 1).voucher.cumulative == 250 and tab.charged_steps == 4


def test_tab_resumes_from_its_own_voucher_only():
    tab = ClientTab(CLIENT.key, SERVER, DOMAIN, price=1)
    tab.resume(signed(500))
    assert tab.cumulative == 500 and tab.receipts == b"\x05" * 32
    tab.resume(signed(100))  # an older one never lowers the tab
    assert tab.cumulative == 500
    with pytest.raises(VoucherError, match="not signed by this client"):
        tab.resume(signed(900, key=OTHER))
    with pytest.raises(VoucherError, match="not this tab"):
        tab.resume(signed(900, client=OTHER))


# ------------------------------------------------------------------ voucher book


def test_book_accepts_and_persists_the_best(book, tmp_path):
    assert book.accept(signed(100)) == 100
    assert book.accept(signed(250)) == 150
    again = VoucherBook(SERVER, DOMAIN, FakeEscrow(), tmp_path / "vouchers.json")
    assert again.paid(CLIENT.address) == 250
    assert not list(tmp_path.glob("*.tmp"))  # atomic write leaves no temporary file


@pytest.mark.parametrize("make, problem", [
    (lambda: signed(10, server=OTHER.address), "not this server"),
    (lambda: signed(10, key=OTHER), "not signed by its client"),
    (lambda: signed(10, domain=PaymentDomain(1, DOMAIN.escrow)), "not signed by its client"),
    (lambda: signed(10**18 + 1), "over deposit"),
])
def test_book_refuses_bad_vouchers(book, make, problem):
    with pytest.raises(VoucherError, match=problem):
        book.accept(make())
    assert book.paid(CLIENT.address) == 0


def test_book_refuses_stale_and_replayed(book):
    book.accept(signed(300))
    for cum in (300, 200):
        with pytest.raises(VoucherError, match="stale"):
            book.accept(signed(cum))
    assert book.paid(CLIENT.address) == 300


def test_over_deposit_counts_what_was_redeemed(book):
    book.state.deposits[CLIENT.address] = 100
    book.state.done[(CLIENT.address, SERVER)] = 1_000  # already redeemed 1000 earlier
    book.accept(signed(1_100))  # 100 unredeemed: fits
    with pytest.raises(VoucherError, match="over deposit"):
        book.accept(signed(1_101))


def test_behind_the_credit_limit(book):
    book.accept(signed(400))
    assert not book.behind(CLIENT.address, 500)
    assert book.behind(CLIENT.address, 501)
    assert book.behind(OTHER.address, 101) and not book.behind(OTHER.address, 100)


def test_to_redeem_puts_reclaims_first_then_value(book):
    book.accept(signed(50))
    book.accept(signed(900, client=OTHER))
    assert [s.voucher.client for s in book.to_redeem()] == [OTHER.address, CLIENT.address]
    assert [s.voucher.client for s in book.to_redeem(min_amount=100)] == [OTHER.address]
    book.state.reclaims[CLIENT.address] = 12345  # its deposit leaves soon: redeem it first, however small
    assert [s.voucher.client for s in book.to_redeem(min_amount=100)] == [CLIENT.address, OTHER.address]
    assert len(book.to_redeem(limit=1)) == 1
    book.state.done[(OTHER.address, SERVER)] = 900
    assert [s.voucher.client for s in book.to_redeem()] == [CLIENT.address]
    assert book.unredeemed() == 50


def test_corrupt_or_foreign_book_file_is_refused(tmp_path):
    path = tmp_path / "v.json"
    path.write_text("{not json")
    with pytest.raises(VoucherError, match="unreadable"):
        VoucherBook(SERVER, DOMAIN, FakeEscrow(), path)
    foreign = VoucherBook(OTHER.address, DOMAIN, FakeEscrow(), tmp_path / "o.json")
    foreign.accept(signed(10, server=OTHER.address))
    with pytest.raises(VoucherError, match="another pair"):
        VoucherBook(SERVER, DOMAIN, FakeEscrow(), tmp_path / "o.json")


def test_non_canonical_signatures_refused_like_the_escrow():
    """The (r, n - s, v ^ 1) twin recovers the same key, but the escrow (OpenZeppelin ECDSA)
    refuses high s: the book must too, or it would hold a voucher that never pays."""
    s = signed(7)
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    high = int.from_bytes(s.signature[32:64], "big")
    twin = s.signature[:32] + (n - high).to_bytes(32, "big") + bytes([55 - s.signature[64]])
    with pytest.raises(VoucherError, match="canonical"):
        recover_voucher_signer(SignedVoucher(s.voucher, twin), DOMAIN)
    with pytest.raises(VoucherError, match="canonical"):
        recover_voucher_signer(SignedVoucher(s.voucher, s.signature[:64] + b"\x01"), DOMAIN)
    with pytest.raises(VoucherError, match="does not recover"):
        recover_voucher_signer(SignedVoucher(s.voucher, b"\x00" * 64 + b"\x1b"), DOMAIN)


def test_server_counts_what_it_served_and_cuts_off_past_the_limit(book):
    """The server charges each step it serves; a client that stops paying is behind once the
    unpaid part exceeds the credit limit (100 wei here), and catches up with a new voucher."""
    for _ in range(3):
        book.charge(CLIENT.address, price=10, blocks=2, tokens=2)  # 40 wei a step
    assert book.owed(CLIENT.address) == 120 and book.behind(CLIENT.address)
    book.accept(signed(80))
    assert not book.behind(CLIENT.address)  # 40 unpaid
    book.charge(CLIENT.address, 10, 2, 2)
    book.charge(CLIENT.address, 10, 2, 2)
    assert book.behind(CLIENT.address)  # 200 owed, 80 paid
    book.accept(signed(200))
    assert not book.behind(CLIENT.address) and book.owed(CLIENT.address) == 200
    assert book.owed(OTHER.address) == 0 and not book.behind(OTHER.address)
