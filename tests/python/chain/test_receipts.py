"""pollen.receipts against independent implementations: eth-account's EIP-712 encoder and the
court's own digest on chain (tested in test_lifecycle_anvil); plus malformed input."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from eth_account import Account
from eth_account.messages import encode_typed_data
from hypothesis import given, settings
from hypothesis import strategies as st

from pollen.receipts import (ZERO_HASH, Receipt, ReceiptDomain, ReceiptError, chain_input_hash,
                             hash_tensor, recover_signer, sign_receipt)

KEY = Account.from_key(b"\x11" * 32)
DOMAIN = ReceiptDomain(chain_id=31337, court="0x" + "c0" * 20)

u32 = st.integers(0, 2**32 - 2)
h32 = st.binary(min_size=32, max_size=32)
receipts = st.builds(
    lambda first, width, step, ts, v, term, kind, sess, ih, oh, root: Receipt(
        KEY.address, v, first, min(first + width, 2**32 - 1), term, kind, sess, step, ih, oh, root, ts),
    u32, st.integers(1, 100), st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1),
    st.integers(0, 2**256 - 1), st.integers(0, 2**32 - 1), st.sampled_from([0, 1, 2]), h32, h32, h32, h32)


def _r(**over):
    base = dict(server=KEY.address, version_id=1, first_block=0, last_block=4, term=0, kind=0,
                session_id=os.urandom(32), step=0, input_hash=os.urandom(32),
                output_hash=os.urandom(32), blocks_root=os.urandom(32), issued_at=1)
    return Receipt(**(base | over))


@settings(max_examples=60, deadline=None)
@given(receipts)
def test_signature_matches_eth_account_typed_data(r):
    ours = sign_receipt(r, DOMAIN, KEY.key)
    reference = Account.sign_message(encode_typed_data(full_message=r.typed_data(DOMAIN)), KEY.key)
    assert ours == bytes(reference.signature)
    assert recover_signer(r, DOMAIN, ours) == KEY.address


def test_other_domain_recovers_someone_else():
    r = _r()
    sig = sign_receipt(r, DOMAIN, KEY.key)
    assert recover_signer(r, ReceiptDomain(1, DOMAIN.court), sig) != KEY.address


@pytest.mark.parametrize("field, other", [("term", 1), ("kind", 2), ("blocks_root", b"\x09" * 32)])
def test_v2_fields_are_signed(field, other):
    """term, kind and blocksRoot are part of the signed digest (as the court hashes them)."""
    r = _r()
    sig = sign_receipt(r, DOMAIN, KEY.key)
    changed = Receipt(**{**r.__dict__, field: other})
    assert changed.struct_hash() != r.struct_hash()
    assert recover_signer(changed, DOMAIN, sig) != KEY.address


def test_json_round_trip_and_bad_json():
    r = _r(version_id=7, first_block=2, last_block=9, term=4, kind=2, step=3, issued_at=99)
    assert Receipt.from_json(r.to_json()) == r
    with pytest.raises(ReceiptError, match="cannot parse"):
        Receipt.from_json({"server": KEY.address})
    bad = r.to_json() | {"input_hash": "0x1234"}
    with pytest.raises(ReceiptError, match="input_hash must be 32 bytes"):
        Receipt.from_json(bad)


@pytest.mark.parametrize("fields, problem", [
    ({"first_block": 4, "last_block": 4}, "bad span"),
    ({"step": -1}, "step out of uint64"),
    ({"session_id": b"short"}, "session_id must be 32 bytes"),
    ({"blocks_root": b"short"}, "blocks_root must be 32 bytes"),
    ({"kind": 3}, "unknown kind"),
    ({"term": 2**32}, "term out of uint32"),
])
def test_malformed_receipts_rejected(fields, problem):
    base = dict(server=KEY.address, version_id=1, first_block=0, last_block=4, term=0, kind=0,
                session_id=b"\0" * 32, step=0, input_hash=b"\0" * 32, output_hash=b"\0" * 32,
                blocks_root=b"\0" * 32, issued_at=1)
    with pytest.raises(ReceiptError, match=problem):
        Receipt(**(base | fields))


def test_garbage_signature_is_a_receipt_error():
    r = _r()
    with pytest.raises(ReceiptError):
        recover_signer(r, DOMAIN, b"\x00" * 64)
    with pytest.raises(ReceiptError):
        recover_signer(r, DOMAIN, b"\xff" * 65)


def test_tensor_hash_is_canonical():
    t = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    assert hash_tensor(t) == hash_tensor(t.numpy()) == hash_tensor(t.t().contiguous().t())
    assert hash_tensor(t) != hash_tensor(t.reshape(4, 3))  # shape is part of the hash
    assert hash_tensor(t) != hash_tensor(t.double())  # and dtype
    big_endian = t.numpy().astype(">f4")
    assert hash_tensor(big_endian.astype("<f4")) == hash_tensor(t)
    assert hash_tensor(t.bfloat16()) != hash_tensor(t.half())


def test_input_hash_chain_commits_to_order():
    a, b = hash_tensor(np.zeros(3, np.float32)), hash_tensor(np.ones(3, np.float32))
    ab = chain_input_hash(chain_input_hash(ZERO_HASH, a), b)
    ba = chain_input_hash(chain_input_hash(ZERO_HASH, b), a)
    assert ab != ba
    with pytest.raises(ReceiptError):
        chain_input_hash(b"short", a)
