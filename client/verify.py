"""Check every receipt a server returns, so that every receipt the client accepts is disputable.

A receipt is accepted only if the court would accept it too: its signer, operator, version and
span are those of the registry term it names (`TermBook`, read from ServerRegistry, never from
the server's own Info), it is dated within that term and close to our clock, its hashes match
what was sent and returned, and `blocksRoot` is the Merkle root of the per-block sketches that
came with the output. Without a registry (a local dev swarm) the server's Info is trusted and
the receipts are marked not disputable.

Output that is not finite is a server failure too, but only after its receipt verified: the
client keeps that signed receipt (`NonFiniteOutput.record`) so it can be disputed.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
import torch
from eth_utils import keccak

from client.errors import ReceiptRejected, ServerFailure
from pollen import judgment, wire
from pollen.proto import swarm_pb2 as pb
from pollen.receipts import KIND_NAMES, Receipt, ReceiptDomain, ReceiptError, hash_tensor, recover_signer

START_GRACE_S = 300  # ServerRegistry.START_GRACE: a term may start this long after issuedAt
SELF_SKETCH_TOLERANCE = 1e-3  # output vs its own last-block sketch: same tensor, float rounding only


@dataclass(frozen=True)
class ReceiptRecord:
    """A verified receipt kept with its session."""

    address: str  # server endpoint that returned it
    receipt: Receipt
    signature: bytes
    disputable: bool = True  # checked against the registry (False: Info trusted, no registry)


class NonFiniteOutput(ServerFailure):
    """A server returned NaN/inf under a valid receipt: a failure, and evidence against it."""

    def __init__(self, address: str, record: ReceiptRecord, output: torch.Tensor, sketches: torch.Tensor):
        super().__init__(address, "returned non-finite values (NaN/inf) under a signed receipt")
        self.record, self.output, self.sketches = record, output, sketches


def recover_address(receipt: Receipt, domain: ReceiptDomain, signature: bytes) -> str:
    """Signer address; libsecp256k1 directly when available (~20 us), else eth-account."""
    try:
        import coincurve
    except ImportError:
        return recover_signer(receipt, domain, signature)
    if len(signature) != 65 or signature[64] not in (27, 28):
        raise ReceiptError("signature must be 65 bytes with v in {27, 28}")
    try:
        pub = coincurve.PublicKey.from_signature_and_message(
            signature[:64] + bytes([signature[64] - 27]), receipt.digest(domain), hasher=None)
    except Exception as exc:  # noqa: BLE001 - coincurve raises several types
        raise ReceiptError(f"signature does not recover ({exc})") from exc
    return "0x" + keccak(pub.format(compressed=False)[1:])[-20:].hex()  # lowercase; compared as such


class TermBook:
    """Registry terms (signer, version, span, start, end) by (operator, index), as the court reads
    them. Closed terms never change and are kept; open ones are re-read after `ttl_s`."""

    def __init__(self, chain, ttl_s: float = 10.0):
        self.chain, self.ttl_s = chain, ttl_s
        self._cache: dict[tuple[str, int], tuple[float, dict | None]] = {}
        self._lock = threading.Lock()

    def get(self, operator: str, index: int) -> dict | None:
        key = (operator.lower(), index)
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and (hit[1] is not None and hit[1]["ended_at"] or time.monotonic() - hit[0] < self.ttl_s):
            return hit[1]
        term = self.chain.term(operator, index)
        with self._lock:
            self._cache[key] = (time.monotonic(), term)
        return term


@dataclass
class Expected:
    """What a receipt must say, known to the client before it arrives."""

    signer: str  # used only without a registry (TermBook)
    operator: str  # the registry's operator for this endpoint (or Info's without a registry)
    session_id: bytes
    step: int
    first: int
    last: int
    input_hash: bytes
    kind: int


def term_problems(r: Receipt, signer: str, term: dict | None, version_id: int | None) -> list[str]:
    """Why the court would refuse this receipt under its named term ([] = it would accept)."""
    if term is None:
        return [f"names term {r.term}, which {r.server} does not have in the registry"]
    problems = []
    if signer.lower() != term["signer"].lower():
        problems.append(f"signed by {signer}, but term {r.term}'s signer is {term['signer']}")
    if term["version_id"] != r.version_id or (version_id is not None and r.version_id != version_id):
        problems.append(f"version {r.version_id}, term {r.term} is version {term['version_id']}"
                        + ("" if version_id is None else f", the client uses {version_id}"))
    if not term["first_block"] <= r.first_block < r.last_block <= term["last_block"]:
        problems.append(f"span [{r.first_block}, {r.last_block}) outside term {r.term}'s "
                        f"[{term['first_block']}, {term['last_block']})")
    if term["started_at"] > r.issued_at + START_GRACE_S or (term["ended_at"] and r.issued_at > term["ended_at"]):
        problems.append(f"issuedAt {r.issued_at} is outside term {r.term} "
                        f"({term['started_at']}..{term['ended_at'] or 'open'})")
    return problems


class ReceiptVerifier:
    def __init__(self, domain: ReceiptDomain, max_skew_s: float = 60.0, terms: TermBook | None = None,
                 version_id: int | None = None):
        self.domain = domain
        self.max_skew_s = max_skew_s
        self.terms, self.version_id = terms, version_id

    def check(self, address: str, msg: pb.Receipt, expected: Expected, output: torch.Tensor | bytes,
              sketches: torch.Tensor | None = None) -> ReceiptRecord:
        """Verify one receipt; `output` is the returned tensor or its canonical hash, `sketches`
        the decoded per-block sketches (blocks, B, T, K) that came with it."""
        try:
            r = Receipt(server=msg.server, version_id=int(msg.version_id or "0"),
                        first_block=msg.first_block, last_block=msg.last_block, term=msg.term,
                        kind=msg.kind, session_id=msg.session_id, step=msg.step, input_hash=msg.input_hash,
                        output_hash=msg.output_hash, blocks_root=msg.blocks_root, issued_at=msg.issued_at)
            signer = recover_address(r, self.domain, bytes(msg.signature))
        except (ReceiptError, ValueError) as exc:
            raise ReceiptRejected(address, str(exc)) from exc
        problems = []
        if self.terms is not None:
            problems += term_problems(r, signer, self.terms.get(r.server, r.term), self.version_id)
        elif signer.lower() != expected.signer.lower():
            problems.append(f"signed by {signer}, expected {expected.signer}")
        if r.server.lower() != expected.operator.lower():
            problems.append(f"operator {r.server}, but this endpoint is registered to {expected.operator}")
        if (r.session_id, r.step, r.kind) != (expected.session_id, expected.step, expected.kind):
            problems.append(f"session/step/kind {r.session_id.hex()[:8]}/{r.step}/{KIND_NAMES.get(r.kind)}, "
                            f"expected {expected.session_id.hex()[:8]}/{expected.step}/{KIND_NAMES[expected.kind]}")
        if (r.first_block, r.last_block) != (expected.first, expected.last):
            problems.append(f"span [{r.first_block}, {r.last_block}) != [{expected.first}, {expected.last})")
        if r.input_hash != expected.input_hash:
            problems.append("input hash does not match the inputs sent")
        if r.output_hash != (output if isinstance(output, bytes) else hash_tensor(output)):
            problems.append("output hash does not match the returned tensor")
        if sketches is not None:
            problems += _sketch_problems(r, sketches)
        if abs(r.issued_at - time.time()) > self.max_skew_s:
            problems.append(f"issuedAt {r.issued_at} is more than {self.max_skew_s}s from now")
        if problems:
            raise ReceiptRejected(address, "; ".join(problems))
        return ReceiptRecord(address, r, bytes(msg.signature), disputable=self.terms is not None)


def _sketch_problems(r: Receipt, sketches: torch.Tensor) -> list[str]:
    if sketches.dim() != 4 or sketches.shape[0] != r.last_block - r.first_block:
        return [f"sketches of shape {tuple(sketches.shape)} for {r.last_block - r.first_block} blocks"]
    if judgment.blocks_root(r.first_block, sketches) != r.blocks_root:
        return ["blocksRoot is not the Merkle root of the sketches returned"]
    return []


def decode_sketches(address: str, msg: pb.Tensor, n_blocks: int, like: tuple[int, ...]) -> torch.Tensor:
    """The sketches a response carried, checked for shape and dtype (ServerFailure if wrong)."""
    try:
        sketches = wire.decode(msg, max_elements=n_blocks * (torch.Size(like[:-1]).numel()) * judgment.SKETCH_DIM)
        judgment.check_sketches(sketches, n_blocks, like)
    except (wire.WireError, judgment.JudgmentError) as exc:
        raise ServerFailure(address, f"bad block sketches: {exc}") from exc
    return sketches


def check_output(address: str, record: ReceiptRecord, y: torch.Tensor, sketches: torch.Tensor,
                 exact: bool) -> None:
    """Raise NonFiniteOutput for NaN/inf (the signed receipt is kept for a dispute), and
    ServerFailure when an uncompressed (`exact`) output contradicts its own last-block sketch."""
    if not wire.all_finite(y) or not wire.all_finite(sketches):
        raise NonFiniteOutput(address, record, y, sketches)
    if exact:
        err = _self_sketch_error(judgment.sketch(y), sketches[-1])
        if err > SELF_SKETCH_TOLERANCE:
            raise ServerFailure(address, f"returned output contradicts its own last-block sketch "
                                         f"(error {err:.3g})")


def _self_sketch_error(mine: torch.Tensor, claimed: torch.Tensor) -> float:
    """judgment.max_error(mine, claimed) for finite CPU float32 sketches (B, T, K), in numpy
    (~5x cheaper than torch on one token); judgment.max_error itself whenever a norm is not
    finite or the shapes differ, so the result never differs beyond float rounding."""
    if mine.shape != claimed.shape or mine.dtype != torch.float32 or claimed.dtype != torch.float32:
        return judgment.max_error(mine, claimed)
    a, b = mine.numpy(), claimed.numpy()  # (B, T, K) each
    with np.errstate(over="ignore"):  # an overflowing norm is inf: judgment.max_error decides then
        den = np.linalg.norm(b, axis=-1)  # (B, T)
    if not den.size or not np.isfinite(den).all():
        return judgment.max_error(mine, claimed)
    floor = max(float(den.mean()), 1e-12) * 1e-6
    return float((np.linalg.norm(a - b, axis=-1) / np.maximum(den, floor)).max())
