"""Check every receipt a server returns: signature, span, session, step, hashes, clock."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from eth_utils import keccak

from client.errors import ReceiptRejected
from pollen.proto import swarm_pb2 as pb
from pollen.receipts import Receipt, ReceiptDomain, ReceiptError, hash_tensor, recover_signer


@dataclass(frozen=True)
class ReceiptRecord:
    """A verified receipt kept with its session."""

    address: str  # server endpoint that returned it
    receipt: Receipt
    signature: bytes


def recover_address(receipt: Receipt, domain: ReceiptDomain, signature: bytes) -> str:
    """Signer address; libsecp256k1 directly when available (~20 us), else eth-account."""
    try:
        import coincurve
    except ImportError:
        return recover_signer(receipt, domain, signature)
    if len(signature) != 65 or signature[64] not in (27, 28):
        raise ReceiptError(f"signature must be 65 bytes with v in {{27, 28}}")
    try:
        pub = coincurve.PublicKey.from_signature_and_message(
            signature[:64] + bytes([signature[64] - 27]), receipt.digest(domain), hasher=None)
    except Exception as exc:  # noqa: BLE001 - coincurve raises several types
        raise ReceiptError(f"signature does not recover ({exc})") from exc
    return "0x" + keccak(pub.format(compressed=False)[1:])[-20:].hex()  # lowercase; compared as such


@dataclass
class Expected:
    """What a receipt must say, known to the client before it arrives."""

    signer: str
    operator: str
    session_id: bytes
    step: int
    first: int
    last: int
    input_hash: bytes


class ReceiptVerifier:
    def __init__(self, domain: ReceiptDomain, max_skew_s: float = 60.0):
        self.domain = domain
        self.max_skew_s = max_skew_s

    def check(self, address: str, msg: pb.Receipt, expected: Expected,
              output: torch.Tensor | bytes) -> ReceiptRecord:
        """Verify one receipt; `output` is the returned tensor or its canonical hash."""
        try:
            r = Receipt(server=msg.server, version_id=int(msg.version_id or "0"),
                        first_block=msg.first_block, last_block=msg.last_block,
                        session_id=msg.session_id, step=msg.step, input_hash=msg.input_hash,
                        output_hash=msg.output_hash, issued_at=msg.issued_at)
            signer = recover_address(r, self.domain, bytes(msg.signature))
        except (ReceiptError, ValueError) as exc:
            raise ReceiptRejected(address, str(exc)) from exc
        problems = []
        if signer.lower() != expected.signer.lower():
            problems.append(f"signed by {signer}, expected {expected.signer}")
        if r.server.lower() != expected.operator.lower():
            problems.append(f"operator {r.server}, expected {expected.operator}")
        if (r.session_id, r.step) != (expected.session_id, expected.step):
            problems.append(f"session/step {r.session_id.hex()[:8]}/{r.step}, expected "
                            f"{expected.session_id.hex()[:8]}/{expected.step}")
        if (r.first_block, r.last_block) != (expected.first, expected.last):
            problems.append(f"span [{r.first_block}, {r.last_block}) != [{expected.first}, {expected.last})")
        if r.input_hash != expected.input_hash:
            problems.append("input hash does not match the inputs sent")
        if r.output_hash != (output if isinstance(output, bytes) else hash_tensor(output)):
            problems.append("output hash does not match the returned tensor")
        if abs(r.issued_at - time.time()) > self.max_skew_s:
            problems.append(f"issuedAt {r.issued_at} is more than {self.max_skew_s}s from now")
        if problems:
            raise ReceiptRejected(address, "; ".join(problems))
        return ReceiptRecord(address, r, bytes(msg.signature))
