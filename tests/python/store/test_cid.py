"""Golden CIDs: the embedded store must give exactly the CIDs a real IPFS node gives.

Reference values (storehelp.GOLDEN) were computed once with the real node (js-ipfs 0.18 from
npm ipfs@0.66.1 on Node 22, `POST /api/v0/add?cid-version=1&raw-leaves=true`) for
`pattern(size)` and are hard-coded; test_kubo_node.py checks the live node still agrees.
Sizes cover the empty file, the 256 KiB chunk boundary, and one full 174-link level (174
chunks = 45 613 056 bytes) and just past it, where the balanced DAG grows a second level.
"""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from storehelp import C, GOLDEN, pattern

from pollen.store import CidError, CidHasher, cid_of_bytes, parse_cid

EMPTY_V0 = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"


def _v1(raw: bytes) -> str:
    return "b" + base64.b32encode(raw).decode().rstrip("=").lower()


@pytest.mark.parametrize("size", sorted(GOLDEN))
def test_golden_cid(size):
    assert cid_of_bytes(pattern(size)) == GOLDEN[size]


@pytest.mark.parametrize("size", [0, C + 1, 174 * C + 1])
def test_embedded_store_stores_under_golden_cid(local, size):
    added = local.add_bytes(pattern(size))
    assert (added.cid, added.size) == (GOLDEN[size], size)
    assert local.cat(added.cid) == pattern(size)


def test_single_chunk_is_raw_leaf_and_larger_is_dag_pb():
    assert parse_cid(GOLDEN[C]).codec == "raw"
    assert parse_cid(GOLDEN[C + 1]).codec == "dag-pb"


def test_well_formed_cid_parses():
    assert parse_cid(_v1(bytes([1, 0x55, 0x12, 32]) + bytes(32))).version == 1
    assert parse_cid(EMPTY_V0).version == 0


def test_cidv0_flavour_of_expected_cid():
    hasher = CidHasher(like=EMPTY_V0)
    assert hasher.finalize() == EMPTY_V0


@settings(max_examples=25, deadline=None)
@given(data=st.binary(max_size=3 * C // 2), cuts=st.lists(st.integers(0, 3 * C // 2), max_size=6))
def test_streaming_hash_equals_one_shot(data, cuts):
    hasher = CidHasher()
    bounds = sorted({0, len(data), *[c for c in cuts if c <= len(data)]})
    for lo, hi in zip(bounds, bounds[1:]):
        hasher.update(data[lo:hi])
    assert hasher.finalize() == cid_of_bytes(data)


@pytest.mark.parametrize("text, problem", [
    ("", "empty"),
    ("hello", "neither a CIDv0"),
    ("QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1Aw0H", "not base58btc"),
    ("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvykA", "lowercase"),
    ("bafkreihdwdcefgh4dq", "digest is"),
    ("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyk1", "invalid base32"),
    (_v1(bytes([2, 0x55, 0x12, 32]) + bytes(32)), "CID version 2"),
    (_v1(bytes([1, 0x71, 0x12, 32]) + bytes(32)), "codec 0x71"),
    (_v1(bytes([1, 0x55, 0x13, 64]) + bytes(64)), "not sha2-256"),
    (42, "expected a string"),
])
def test_malformed_cid_is_rejected_with_reason(text, problem):
    with pytest.raises(CidError, match="malformed CID") as err:
        parse_cid(text)
    assert problem in str(err.value)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=70))
def test_parse_cid_only_raises_cid_error(text):
    try:
        assert parse_cid(text).text == text
    except CidError:
        pass
