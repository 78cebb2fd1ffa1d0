"""Evidence bundles: what a challenger puts on IPFS so drawn auditors can recompute a receipt.

One bundle = one disputed receipt and everything needed to check it:

  * the receipt and its 65-byte signature;
  * the session's input history for that span, steps 0..receipt.step (`inputs`): their hash
    chain must equal `receipt.input_hash` (with a KV cache, step t depends on all of them);
  * the claimed outputs of those steps (`outputs`); the last one's hash must equal
    `receipt.output_hash`.

Stored as ONE safetensors file (tensors `input.{i}` / `output.{i}` in the wire dtype, the
receipt as JSON in the header metadata) added to the content store; its CID goes on chain.
Everything read back is checked: a malformed or inconsistent bundle raises EvidenceError.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch

from pollen.errors import PollenError
from pollen.receipts import ZERO_HASH, Receipt, ReceiptError, chain_input_hash, hash_tensor

SCHEMA = "pollen.evidence/1"
MAX_STEPS = 65_536
_HEX_FIELDS = ("session_id", "input_hash", "output_hash")


class EvidenceError(PollenError):
    def __init__(self, where: str, problem: str):
        super().__init__(f"evidence bundle {where}: {problem}")


@dataclass
class Evidence:
    receipt: Receipt
    signature: bytes
    inputs: list[torch.Tensor]  # (B, T_i, C) per step, steps 0..receipt.step
    outputs: list[torch.Tensor]  # claimed outputs, same shapes

    def check(self, where: str = "(in memory)") -> "Evidence":
        """Raise EvidenceError unless the tensors match the receipt's hashes."""
        n = self.receipt.step + 1
        if len(self.inputs) != n or len(self.outputs) != n:
            raise EvidenceError(where, f"receipt is step {self.receipt.step} but the bundle has "
                                f"{len(self.inputs)} inputs and {len(self.outputs)} outputs")
        for i, (x, y) in enumerate(zip(self.inputs, self.outputs)):
            if x.shape != y.shape or x.dim() != 3:
                raise EvidenceError(where, f"step {i}: input {tuple(x.shape)} and output "
                                    f"{tuple(y.shape)} must be equal (batch, seq, hidden) shapes")
        if input_chain(self.inputs) != self.receipt.input_hash:
            raise EvidenceError(where, "inputs do not hash to the receipt's inputHash")
        if hash_tensor(self.outputs[-1]) != self.receipt.output_hash:
            raise EvidenceError(where, "last claimed output does not hash to the receipt's outputHash")
        return self


def input_chain(inputs: list[torch.Tensor]) -> bytes:
    h = ZERO_HASH
    for x in inputs:
        h = chain_input_hash(h, hash_tensor(x))
    return h


def receipt_to_json(r: Receipt) -> dict:
    out = {"server": r.server, "version_id": r.version_id, "first_block": r.first_block,
           "last_block": r.last_block, "step": r.step, "issued_at": r.issued_at}
    out.update({k: "0x" + bytes(getattr(r, k)).hex() for k in _HEX_FIELDS})
    return out


def receipt_from_json(data: dict, where: str) -> Receipt:
    try:
        fields = dict(data)
        for k in _HEX_FIELDS:
            fields[k] = bytes.fromhex(str(fields[k]).removeprefix("0x"))
        for k in ("version_id", "first_block", "last_block", "step", "issued_at"):
            fields[k] = int(fields[k])
        return Receipt(**fields)
    except (KeyError, TypeError, ValueError, ReceiptError) as exc:
        raise EvidenceError(where, f"bad receipt ({exc})") from exc


_ST_DTYPES = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16"}


def to_bytes(ev: Evidence) -> bytes:
    """Deterministic safetensors bytes (sorted header, tensors in name order): the same bundle
    always gets the same CID. Readable by any safetensors loader."""
    tensors = {f"input.{i}": x for i, x in enumerate(ev.inputs)}
    tensors.update({f"output.{i}": y for i, y in enumerate(ev.outputs)})
    header: dict = {"__metadata__": {"schema": SCHEMA, "receipt": json.dumps(receipt_to_json(ev.receipt), sort_keys=True),
                                     "signature": "0x" + ev.signature.hex(), "steps": str(len(ev.inputs))}}
    blobs, offset = [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        if t.dtype not in _ST_DTYPES:
            raise EvidenceError("(writing)", f"{name} has dtype {t.dtype}, not a wire dtype")
        raw = (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy().tobytes()
        header[name] = {"dtype": _ST_DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + b"".join(blobs)


def from_bytes(data: bytes, where: str = "(bytes)") -> Evidence:
    """Parse and check a bundle (hashes included)."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    meta = _metadata(data, where)
    try:
        tensors = load(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise EvidenceError(where, f"not a safetensors file ({exc})") from exc
    try:
        steps = int(meta["steps"])
        receipt = receipt_from_json(json.loads(meta["receipt"]), where)
        signature = bytes.fromhex(meta["signature"].removeprefix("0x"))
    except (KeyError, ValueError) as exc:
        raise EvidenceError(where, f"bad metadata ({exc})") from exc
    if not 0 < steps <= MAX_STEPS or len(tensors) != 2 * steps:
        raise EvidenceError(where, f"{len(tensors)} tensors for {steps} steps")
    try:
        inputs = [tensors[f"input.{i}"] for i in range(steps)]
        outputs = [tensors[f"output.{i}"] for i in range(steps)]
    except KeyError as exc:
        raise EvidenceError(where, f"missing tensor {exc}") from exc
    return Evidence(receipt, signature, inputs, outputs).check(where)


def _metadata(data: bytes, where: str) -> dict:
    if len(data) < 8:
        raise EvidenceError(where, "too short to be a safetensors file")
    n = int.from_bytes(data[:8], "little")
    if n > len(data) - 8 or n > 10 << 20:
        raise EvidenceError(where, "header length out of range")
    try:
        meta = json.loads(data[8:8 + n]).get("__metadata__") or {}
    except (ValueError, AttributeError) as exc:
        raise EvidenceError(where, f"unreadable header ({exc})") from exc
    if meta.get("schema") != SCHEMA:
        raise EvidenceError(where, f"schema {meta.get('schema')!r}, expected {SCHEMA!r}")
    return meta


def put(store, ev: Evidence) -> str:
    """Add the (checked) bundle to the content store, pin it; returns its CID."""
    added = store.add_bytes(to_bytes(ev.check()))
    store.pin(added.cid)
    return added.cid


def get(store, cid: str) -> Evidence:
    """Fetch a bundle by CID (the store verifies the bytes against the CID) and check it."""
    return from_bytes(store.cat(cid), where=cid)


def relative_error(claimed: torch.Tensor, reference: torch.Tensor) -> float:
    """max over batch rows of ||claimed - reference|| / ||reference|| (the manifest's metric)."""
    a, b = claimed.float().flatten(1), reference.float().flatten(1)
    num = (a - b).norm(dim=1)
    den = b.norm(dim=1).clamp_min(1e-12)
    return float((num / den).max())
