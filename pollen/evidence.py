"""Evidence bundles: what a challenger puts on IPFS so drawn auditors can judge one receipt.

One bundle = one disputed receipt and what its named block needs, nothing more (it is public):

  * the receipt and its 65-byte signature;
  * the session's input history for that span, steps 0..receipt.step (`inputs`): their hash
    chain must equal `receipt.input_hash` (with a KV cache, step t depends on all of them);
    for a Backward receipt: the forward input and `grad_output`;
  * the claimed output of the disputed step (`output`): its hash must equal `outputHash`;
  * the claimed per-block sketches of that step (`sketches`, (blocks, B, T, K)): their Merkle
    root must equal `blocksRoot`;
  * `block`: the first block the challenger says is wrong (the one the court records);
  * for a step that used deep prompts: `prompts` (blocks, B, P, C), folded into inputHash
    (pollen.receipts.fold_prompts), and for a prompted Backward the claimed `grad_prompts`,
    folded with the output into outputHash (fold_grads);
  * for a Forward / Backward run with client LoRA weights: `lora` (pollen.model.lora.Lora, tensors
    "lora.{k}.a" (blocks, r, in) / "lora.{k}.b" (blocks, out, r) per target k, rank, alpha and
    target names in the metadata), folded into inputHash (fold_lora), and for a Backward the
    claimed `grad_lora` ("grad_lora.{k}.a/b"), folded into outputHash (fold_lora_grads);
  * for a step run with a published adapter named by CID: `adapter` (metadata), folded into
    inputHash (fold_adapter; in a session at step 0); the auditor fetches its shards by CID.

Schema: "pollen.evidence/2" for bundles without prompts (byte-identical to before), "/3" for
bundles with them, "/4" for bundles with LoRA weights or a named adapter; readers accept all three.

Stored as ONE safetensors file (the receipt as JSON in the header metadata) added to the content
store; its CID goes on chain. Everything read back is checked: a malformed or inconsistent
bundle raises EvidenceError. Bundles over MAX_BYTES are refused on both sides.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch

from pollen import dtypes, judgment
from pollen.errors import PollenError
from pollen.model.lora import Lora
from pollen.receipts import (KIND_BACKWARD, KIND_FORWARD, ZERO_HASH, Receipt, ReceiptError, chain_input_hash,
                             fold_adapter, fold_grads, fold_lora, fold_lora_grads, fold_prompts, hash_tensor)

SCHEMA = "pollen.evidence/2"  # bundles without deep prompts
SCHEMA_PROMPTS = "pollen.evidence/3"  # bundles with deep prompts (tensors `prompts`, `grad_prompts`)
SCHEMA_LORA = "pollen.evidence/4"  # bundles with client LoRA weights (and maybe prompts)
SCHEMAS = (SCHEMA, SCHEMA_PROMPTS, SCHEMA_LORA)
MAX_STEPS = 65_536
MAX_BYTES = 64 << 20  # auditors refuse (abstain on) larger bundles; challengers never build them
_HEX_FIELDS = ("session_id", "input_hash", "output_hash", "blocks_root")


class EvidenceError(PollenError):
    def __init__(self, where: str, problem: str):
        super().__init__(f"evidence bundle {where}: {problem}")


@dataclass
class Evidence:
    receipt: Receipt
    signature: bytes
    inputs: list[torch.Tensor]  # (B, T_i, C) per step, steps 0..receipt.step
    output: torch.Tensor  # claimed output of the disputed step (backward: grad_input)
    sketches: torch.Tensor  # claimed (blocks, B, T, K) of the disputed step
    block: int  # global index of the first block claimed wrong
    grad_output: torch.Tensor | None = None  # Backward receipts only
    prompts: torch.Tensor | None = None  # deep prompts (blocks, B, P, C) of a prompted step
    grad_prompts: torch.Tensor | None = None  # claimed dL/dprompts of a prompted Backward
    lora: Lora | None = None  # client LoRA weights of a Forward / Backward run with them
    grad_lora: Lora | None = None  # claimed dL/dLoRA of such a Backward
    adapter: str = ""  # CID of the published adapter the step named ("" = none)

    def check(self, where: str = "(in memory)") -> "Evidence":
        """Raise EvidenceError unless the tensors match the receipt's hashes and root."""
        r = self.receipt
        n = 1 if r.kind in (KIND_FORWARD, KIND_BACKWARD) else r.step + 1
        if len(self.inputs) != n:
            raise EvidenceError(where, f"receipt is {'step ' + str(r.step) if n > 1 else 'one call'} but the "
                                f"bundle has {len(self.inputs)} inputs")
        for i, x in enumerate(self.inputs):
            if x.dim() != 3 or x.shape[0] != self.output.shape[0] or x.shape[2] != self.output.shape[2]:
                raise EvidenceError(where, f"step {i}: input {tuple(x.shape)} does not fit output "
                                    f"{tuple(self.output.shape)} (batch, seq, hidden)")
        if self.output.shape != self.inputs[-1].shape:
            raise EvidenceError(where, f"output {tuple(self.output.shape)} != last input {tuple(self.inputs[-1].shape)}")
        if not r.first_block <= self.block < r.last_block:
            raise EvidenceError(where, f"named block {self.block} outside [{r.first_block}, {r.last_block})")
        if (r.kind == KIND_BACKWARD) != (self.grad_output is not None):
            raise EvidenceError(where, "grad_output is required for (and only for) a backward receipt")
        self._check_prompts(where)
        self._check_lora(where)
        if self.adapter and self.lora is not None:
            raise EvidenceError(where, "a step has client LoRA weights or a published adapter, not both")
        committed = input_hash_of(r.kind, self.inputs, self.grad_output, self.prompts, self.adapter)
        if fold_lora(committed, self.lora) != r.input_hash:
            raise EvidenceError(where, "inputs do not hash to the receipt's inputHash")
        if fold_lora_grads(fold_grads(hash_tensor(self.output), self.grad_prompts), self.grad_lora) != r.output_hash:
            raise EvidenceError(where, "claimed output does not hash to the receipt's outputHash")
        try:
            judgment.check_sketches(self.sketches, r.last_block - r.first_block, tuple(self.output.shape))
        except judgment.JudgmentError as exc:
            raise EvidenceError(where, str(exc)) from exc
        if judgment.blocks_root(r.first_block, self.sketches) != r.blocks_root:
            raise EvidenceError(where, "sketches do not hash to the receipt's blocksRoot")
        return self

    def _check_lora(self, where: str) -> None:
        """LoRA only with one Forward / Backward, one A and B per target for the span's blocks;
        grad_lora only (and always) with a LoRA Backward, shaped like the weights. Fit to the
        blocks' module shapes is the auditor's check (it has the blocks)."""
        r, w, n = self.receipt, self.lora, self.receipt.last_block - self.receipt.first_block
        if w is not None:
            if r.kind not in (KIND_FORWARD, KIND_BACKWARD):
                raise EvidenceError(where, "LoRA weights in a bundle for an inference step (they go with Forward/Backward)")
            if any(t.dim() != 3 or t.shape[0] != n for t in w.tensors()):
                raise EvidenceError(where, f"LoRA tensors {[tuple(t.shape) for t in w.tensors()]} are not (blocks={n}, ., .)")
        if (w is not None and r.kind == KIND_BACKWARD) != (self.grad_lora is not None):
            raise EvidenceError(where, "grad_lora is required for (and only for) a backward receipt with LoRA")
        if self.grad_lora is not None and [t.shape for t in self.grad_lora.tensors()] != [t.shape for t in w.tensors()]:
            raise EvidenceError(where, "grad_lora is not shaped like the LoRA weights")

    def _check_prompts(self, where: str) -> None:
        """Prompts fit the span and the first input; grad_prompts only (and always) with a
        prompted Backward, shaped like the prompts."""
        r, p = self.receipt, self.prompts
        if p is not None:
            B, T, C = self.inputs[0].shape
            if p.dim() != 4 or (p.shape[0], p.shape[1], p.shape[3]) != (r.last_block - r.first_block, B, C) \
                    or not 1 <= p.shape[2] <= T:
                raise EvidenceError(where, f"prompts {tuple(p.shape)} do not fit {r.last_block - r.first_block} "
                                    f"blocks and the first input {(B, T, C)}")
        want_grad = p is not None and r.kind == KIND_BACKWARD
        if want_grad != (self.grad_prompts is not None):
            raise EvidenceError(where, "grad_prompts is required for (and only for) a prompted backward receipt")
        if self.grad_prompts is not None and self.grad_prompts.shape != p.shape:
            raise EvidenceError(where, f"grad_prompts {tuple(self.grad_prompts.shape)} != prompts {tuple(p.shape)}")


def input_chain(inputs: list[torch.Tensor], prompts: torch.Tensor | None = None, adapter: str = "") -> bytes:
    """Session chain over the inputs; deep prompts, then a named adapter, are folded in at step 0
    (the step they came with)."""
    h = ZERO_HASH
    for i, x in enumerate(inputs):
        h = chain_input_hash(h, hash_tensor(x))
        if i == 0:
            h = fold_adapter(fold_prompts(h, prompts), adapter)
    return h


def input_hash_of(kind: int, inputs: list[torch.Tensor], grad_output: torch.Tensor | None,
                  prompts: torch.Tensor | None = None, adapter: str = "") -> bytes:
    """The inputHash a server signs: the session chain, or (x) / (x, grad_output) for one call,
    then folded with the deep prompts and the named adapter if the step had any (client LoRA
    weights are folded by the caller, fold_lora)."""
    if kind == KIND_BACKWARD and grad_output is not None:
        h = fold_prompts(chain_input_hash(input_chain(inputs), hash_tensor(grad_output)), prompts)
        return fold_adapter(h, adapter)
    return input_chain(inputs, prompts, adapter)


def receipt_to_json(r: Receipt) -> dict:
    out = {"server": r.server, "version_id": r.version_id, "first_block": r.first_block,
           "last_block": r.last_block, "term": r.term, "kind": r.kind, "step": r.step,
           "issued_at": r.issued_at}
    out.update({k: "0x" + bytes(getattr(r, k)).hex() for k in _HEX_FIELDS})
    return out


def receipt_from_json(data: dict, where: str) -> Receipt:
    try:
        fields = dict(data)
        for k in _HEX_FIELDS:
            fields[k] = bytes.fromhex(str(fields[k]).removeprefix("0x"))
        for k in ("version_id", "first_block", "last_block", "term", "kind", "step", "issued_at"):
            fields[k] = int(fields[k])
        return Receipt(**fields)
    except (KeyError, TypeError, ValueError, ReceiptError) as exc:
        raise EvidenceError(where, f"bad receipt ({exc})") from exc


_ST_DTYPES = {dtypes.torch_dtype(name): code for name, code in dtypes.SAFETENSORS.items()}


def to_bytes(ev: Evidence) -> bytes:
    """Deterministic safetensors bytes (sorted header, tensors in name order): the same bundle
    always gets the same CID. Readable by any safetensors loader."""
    tensors = {f"input.{i}": x for i, x in enumerate(ev.inputs)}
    tensors.update({"output": ev.output, "sketches": ev.sketches})
    optional = {"grad_output": ev.grad_output, "prompts": ev.prompts, "grad_prompts": ev.grad_prompts}
    tensors.update({k: v for k, v in optional.items() if v is not None})
    meta = {"receipt": json.dumps(receipt_to_json(ev.receipt), sort_keys=True),
            "signature": "0x" + ev.signature.hex(), "steps": str(len(ev.inputs)), "block": str(ev.block)}
    if ev.lora is not None:
        tensors.update(_lora_tensors("lora", ev.lora))
        tensors.update(_lora_tensors("grad_lora", ev.grad_lora))
        meta["lora"] = json.dumps({"rank": ev.lora.rank, "alpha": ev.lora.alpha, "targets": list(ev.lora.targets)})
    if ev.adapter:
        meta["adapter"] = ev.adapter
    tuned = ev.lora is not None or ev.adapter
    meta["schema"] = SCHEMA_LORA if tuned else SCHEMA if ev.prompts is None else SCHEMA_PROMPTS
    header: dict = {"__metadata__": meta}
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
    data = len(text).to_bytes(8, "little") + text + b"".join(blobs)
    if len(data) > MAX_BYTES:
        raise EvidenceError("(writing)", f"{len(data)} bytes exceed the {MAX_BYTES}-byte cap auditors enforce")
    return data


def from_bytes(data: bytes, where: str = "(bytes)") -> Evidence:
    """Parse and check a bundle (hashes included)."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    if len(data) > MAX_BYTES:
        raise EvidenceError(where, f"{len(data)} bytes exceed the {MAX_BYTES}-byte cap")
    meta = _metadata(data, where)
    try:
        tensors = load(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise EvidenceError(where, f"not a safetensors file ({exc})") from exc
    try:
        steps = int(meta["steps"])
        block = int(meta["block"])
        receipt = receipt_from_json(json.loads(meta["receipt"]), where)
        signature = bytes.fromhex(meta["signature"].removeprefix("0x"))
    except (KeyError, ValueError) as exc:
        raise EvidenceError(where, f"bad metadata ({exc})") from exc
    lora, grad_lora = _lora_from(tensors, meta, where)
    extra = 2 + sum(k in tensors for k in ("grad_output", "prompts", "grad_prompts"))
    extra += sum(len(w.tensors()) for w in (lora, grad_lora) if w is not None)
    adapter = str(meta.get("adapter", ""))
    if lora is None and not adapter and ("prompts" in tensors) != (meta["schema"] == SCHEMA_PROMPTS):
        raise EvidenceError(where, f"schema {meta['schema']!r} with{'' if 'prompts' in tensors else 'out'} prompts")
    if not 0 < steps <= MAX_STEPS or len(tensors) != steps + extra:
        raise EvidenceError(where, f"{len(tensors)} tensors for {steps} steps")
    try:
        inputs = [tensors[f"input.{i}"] for i in range(steps)]
        output, sketches = tensors["output"], tensors["sketches"]
    except KeyError as exc:
        raise EvidenceError(where, f"missing tensor {exc}") from exc
    return Evidence(receipt, signature, inputs, output, sketches, block, tensors.get("grad_output"),
                    tensors.get("prompts"), tensors.get("grad_prompts"), lora, grad_lora, adapter).check(where)


def _lora_tensors(prefix: str, w: Lora | None) -> dict[str, torch.Tensor]:
    if w is None:
        return {}
    return {f"{prefix}.{k}.{ab}": t for k, (a, b) in enumerate(zip(w.a, w.b)) for ab, t in (("a", a), ("b", b))}


def _lora_from(tensors: dict, meta: dict, where: str) -> tuple[Lora | None, Lora | None]:
    """(lora, grad_lora) of a /4 bundle (None, None otherwise)."""
    if (meta["schema"] == SCHEMA_LORA) != ("lora" in meta or "adapter" in meta):
        raise EvidenceError(where, f"schema {meta['schema']!r} with{'' if 'lora' in meta else 'out'} LoRA metadata")
    if "lora" not in meta:
        return None, None
    try:
        info = json.loads(meta["lora"])
        rank, alpha, targets = int(info["rank"]), float(info["alpha"]), tuple(str(t) for t in info["targets"])
    except (KeyError, TypeError, ValueError) as exc:
        raise EvidenceError(where, f"bad LoRA metadata ({exc})") from exc
    out = []
    for prefix in ("lora", "grad_lora"):
        names = [f"{prefix}.{k}.{ab}" for k in range(len(targets)) for ab in "ab"]
        have = [n in tensors for n in names]
        if any(have) and not all(have) or (prefix == "lora" and not all(have)) or not targets:
            raise EvidenceError(where, f"{prefix}: expected tensors {names}")
        flat = [tensors[n] for n in names] if all(have) else None
        out.append(None if flat is None else Lora(rank, alpha, targets, tuple(flat[0::2]), tuple(flat[1::2])))
    return out[0], out[1]


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
    if meta.get("schema") not in SCHEMAS:
        raise EvidenceError(where, f"schema {meta.get('schema')!r}, expected one of {SCHEMAS!r}")
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
    """The FIRST wave's metric, kept for comparison in benchmarks only: max over batch rows of
    one relative L2 error over the whole flattened output. It misses cheats (one token's
    residual stream dominates it); judgments use pollen.judgment.max_error per block per token."""
    a, b = claimed.float().flatten(1), reference.float().flatten(1)
    num = (a - b).norm(dim=1)
    den = b.norm(dim=1).clamp_min(1e-12)
    return float((num / den).max())
