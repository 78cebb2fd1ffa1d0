"""Unit tests of the wire format, compression, generated gRPC code and receipt signing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pollen import wire
from pollen.proto import swarm_pb2 as pb
from pollen.receipts import Receipt, ReceiptDomain, hash_tensor, recover_signer, sign_receipt

ROOT = Path(__file__).resolve().parents[3]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(1, 5), min_size=1, max_size=4), st.sampled_from(["float32", "bfloat16", "float16"]))
def test_roundtrip_exact(shape, dtype):
    x = torch.randn(*shape).to(wire.WIRE_DTYPES[dtype])
    y = wire.decode(wire.encode(x))
    assert y.dtype == x.dtype and torch.equal(x, y)
    assert hash_tensor(x) == hash_tensor(y)


def test_blockwise_8bit_error_bound():
    x = torch.randn(3, 7, 576) * 5
    y = wire.decode(wire.encode(x, compress=True))
    assert y.shape == x.shape
    # per block, error <= absmax/254 (rounding to 1/127 of the block's absmax)
    err = (x - y).abs().reshape(-1)
    assert (err.norm() / x.norm()) < 0.01
    assert len(wire.encode(x, True).data) == x.numel()  # 1 byte per value (+ scales)


def test_compression_handles_zeros_and_padding():
    x = torch.zeros(1, 1, 70)
    assert torch.equal(wire.decode(wire.encode(x, True)), x)


@pytest.mark.parametrize("msg,problem", [
    (pb.Tensor(dtype="int64", shape=[1]), "unknown dtype"),
    (pb.Tensor(dtype="float32", shape=[-1]), "invalid shape"),
    (pb.Tensor(dtype="float32", shape=[2], data=b"\0" * 7), "data bytes"),
    (pb.Tensor(dtype="float32", shape=[2], compression=1, data=b"\0\0", scales=b"", block_size=64), "scale bytes"),
    (pb.Tensor(dtype="float32", shape=[2], compression=1, data=b"\0\0", block_size=0), "block size"),
    (pb.Tensor(dtype="float32", shape=[2], compression=7), "compression"),
])
def test_decode_rejects_malformed(msg, problem):
    with pytest.raises(wire.WireError, match=problem):
        wire.decode(msg)


def test_decode_element_limit():
    with pytest.raises(wire.WireError, match="exceed"):
        wire.decode(pb.Tensor(dtype="float32", shape=[1000, 1000]), max_elements=10)


def test_generated_grpc_code_is_up_to_date(tmp_path):
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{ROOT}", f"--python_out={tmp_path}",
                    f"--grpc_python_out={tmp_path}", f"--pyi_out={tmp_path}", "pollen/proto/swarm.proto"],
                   check=True, cwd=ROOT)
    for name in ("swarm_pb2.py", "swarm_pb2_grpc.py", "swarm_pb2.pyi"):
        assert (tmp_path / "pollen/proto" / name).read_text() == (ROOT / "pollen/proto" / name).read_text(), \
            f"{name} is stale: run `make swarm-proto`"


def _receipt(**kw):
    base = dict(server="0x" + "11" * 20, version_id=3, first_block=2, last_block=5, term=1, kind=0,
                session_id=os.urandom(32), step=7, input_hash=os.urandom(32), output_hash=os.urandom(32),
                blocks_root=os.urandom(32), issued_at=int(time.time()))
    return Receipt(**{**base, **kw})


def test_fast_signer_matches_eth_account():
    from node.signing import ReceiptSigner

    domain = ReceiptDomain(31337, "0x" + "22" * 20)
    key = "0x" + "ab" * 32
    signer = ReceiptSigner(key, domain)
    r = _receipt()
    assert signer.sign(r) == sign_receipt(r, domain, key)
    assert recover_signer(r, domain, signer.sign(r)) == signer.address


def test_verifier_rejects_tampering():
    from client.errors import ReceiptRejected
    from client.verify import Expected, ReceiptVerifier
    from node.signing import ReceiptSigner

    domain = ReceiptDomain(31337, "0x" + "22" * 20)
    signer = ReceiptSigner(None, domain)
    out = torch.randn(1, 1, 8)
    r = _receipt(server=signer.address, output_hash=hash_tensor(out))
    exp = Expected(signer.address, signer.address, r.session_id, r.step, 2, 5, r.input_hash, r.kind)

    def msg(rec, sig):
        return pb.Receipt(server=rec.server, version_id=str(rec.version_id), first_block=rec.first_block,
                          last_block=rec.last_block, term=rec.term, kind=rec.kind, session_id=rec.session_id,
                          step=rec.step, input_hash=rec.input_hash, output_hash=rec.output_hash,
                          blocks_root=rec.blocks_root, issued_at=rec.issued_at, signature=sig)

    v = ReceiptVerifier(domain, max_skew_s=30)
    assert v.check("x", msg(r, signer.sign(r)), exp, out).receipt == r
    with pytest.raises(ReceiptRejected, match="output hash"):
        v.check("x", msg(r, signer.sign(r)), exp, out + 1)
    old = _receipt(server=signer.address, output_hash=hash_tensor(out), issued_at=int(time.time()) - 3600,
                   session_id=r.session_id, input_hash=r.input_hash)
    with pytest.raises(ReceiptRejected, match="issuedAt"):
        v.check("x", msg(old, signer.sign(old)), exp, out)
    other = ReceiptSigner(None, domain)
    with pytest.raises(ReceiptRejected, match="signed by"):
        v.check("x", msg(r, other.sign(r)), exp, out)
    with pytest.raises(ReceiptRejected, match="signature"):
        v.check("x", msg(r, b"\x01" * 65), exp, out)
    with pytest.raises(ReceiptRejected, match="input hash"):
        bad = Expected(**{**exp.__dict__, "input_hash": os.urandom(32)})
        v.check("x", msg(r, signer.sign(r)), bad, out)


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=20, max_size=20), st.integers(0, 2**256 - 1), st.integers(0, 2**32 - 2),
       st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1))
def test_packed_struct_hash_equals_eth_abi(addr, version, first, step, issued):
    from eth_abi import encode as abi_encode
    from eth_utils import keccak, to_checksum_address

    from pollen.receipts import RECEIPT_TYPEHASH

    r = _receipt(server="0x" + addr.hex(), version_id=version, first_block=first, last_block=first + 1,
                 step=step, issued_at=issued)
    ref = keccak(abi_encode(
        ["bytes32", "address", "uint256", "uint32", "uint32", "uint32", "uint8", "bytes32", "uint64", "bytes32",
         "bytes32", "bytes32", "uint64"],
        [RECEIPT_TYPEHASH, to_checksum_address(r.server), r.version_id, r.first_block, r.last_block, r.term,
         r.kind, r.session_id, r.step, r.input_hash, r.output_hash, r.blocks_root, r.issued_at]))
    assert r.struct_hash() == ref
