"""Audit one dispute: fetch the evidence by CID, check it against the disputed receipt, recompute
the span's blocks up to the NAMED block from the committed input, and compare per block, per
token (pollen.judgment) within the version's tolerance.

Verdict rules (what an honest auditor votes):
  * evidence cannot be fetched (store down, CID not provided)      -> abstain: nothing judged,
    and the challenger keeps its bond unless a majority of the panel judged;
  * evidence malformed, over the size cap, or not matching the disputed receipt (hash chain,
    output hash, blocksRoot, fields, span, block) -> honest: the challenger proved nothing;
  * otherwise faulty  <=>  some block b in [first, named block] has a claimed sketch whose error
    against the float32 recomputation exceeds the tolerance (if the named block is the span's
    last, the full claimed output is compared too), or the claimed output contradicts the
    server's own last-block sketch. A Backward receipt is judged on its whole gradient (and,
    for a step with deep prompts, on the prompts' gradient too).

Deep prompts in the bundle are applied exactly as the server did (pollen.model.span: before
block i, prompts[i] added to the first P positions), forward and backward; so are client LoRA
weights (pollen.model.lora), and a Backward with LoRA is judged on their gradients too. A step
that named a published adapter is recomputed with that adapter's weights, fetched by CID (verified).

Recomputation is in float32 (the reference), on the auditor's own span when it already holds
those blocks in float32, else on the disputed span fetched by CID for the occasion. The vote is
bound to a fingerprint of what was recomputed (sha256 of the reference sketches).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import torch

from pollen import evidence as ev
from pollen import judgment
from pollen.errors import PollenError
from pollen.model.span import span_grads
from pollen.receipts import KIND_BACKWARD, ZERO_HASH, hash_tensor

log = logging.getLogger("pollen.node.auditor")


@dataclass
class Verdict:
    verdict: str  # "faulty" | "honest" | "abstain"
    error: float | None  # worst measured error (None if nothing was recomputed)
    note: str
    fingerprint: bytes = ZERO_HASH  # hash of what was recomputed (committed with the vote)
    bad_block: int | None = None  # first block found out of tolerance

    @property
    def faulty(self) -> bool:
        return self.verdict == "faulty"


class SpanProvider:
    """float32 span models by (first, last): the daemon's own span when it fits, else fetched."""

    def __init__(self, chain, store, version_id: int, cache_dir: str, own=None):
        self.chain, self.store, self.version_id, self.cache_dir = chain, store, version_id, cache_dir
        self.own = own  # (SpanModel, start, end) the daemon serves in float32, or None
        self._loaded: dict[tuple[int, int], object] = {}
        self._folders: dict[tuple[int, int], str] = {}
        self._adapters: dict[tuple[str, int, int], object] = {}  # (cid, first, last) -> Lora

    def _own(self, first: int, last: int):
        if self.own is not None:
            model, start, end = self.own
            if start <= first and last <= end:
                return model, first - start, last - start
        return None

    def fetch(self, first: int, last: int) -> None:
        """Download (and verify by CID) the shards of [first, last) unless we hold them: network
        and disk only, so the daemon runs it off the compute loop that serves sessions."""
        if self._own(first, last) is None and (first, last) not in self._folders:
            from pollen.shards import fetch_version_span

            files = fetch_version_span(self.store, self.chain, self.version_id, first, last, self.cache_dir)
            self._folders[(first, last)] = str(files.folder)

    def fetch_adapter(self, cid: str, first: int, last: int) -> None:
        """Fetch (verified by CID) a published adapter's weights for blocks [first, last): network only."""
        if (cid, first, last) not in self._adapters:
            from pollen.adapters import load_lora

            self._adapters[(cid, first, last)] = load_lora(self.store, cid, first, last)

    def adapter(self, cid: str, first: int, last: int):
        """The weights fetch_adapter got (pollen.model.lora.Lora for blocks [first, last))."""
        return self._adapters[(cid, first, last)]

    def get(self, first: int, last: int):
        """(span model, local first, local last) able to run blocks [first, last)."""
        own = self._own(first, last)
        if own is not None:
            return own
        if (first, last) not in self._loaded:
            from pollen.model import load_span

            self.fetch(first, last)
            self._loaded = {(first, last): load_span(self._folders[(first, last)], first, last, "float32")}
        return self._loaded[(first, last)], 0, last - first


def recompute(span_model, first: int, last: int, inputs: list[torch.Tensor],
              prompts: torch.Tensor | None = None, lora=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(output, sketches (blocks, B, T, K)) of the LAST step through local blocks [first, last),
    recomputed as one causal parallel forward over all inputs; prompts (last - first, B, P, C)
    sit at positions 0..P-1, i.e. in the first step, where the server applied them."""
    x = torch.cat([t.float() for t in inputs], dim=1)
    n = inputs[-1].shape[1]
    trace: list[torch.Tensor] = []
    with torch.no_grad():
        y = span_model(x, None, first, last, trace=trace, prompts=None if prompts is None else prompts.float(),
                       lora=None if lora is None else lora.map(torch.Tensor.float))
    return y[:, -n:], torch.stack([s[:, -n:] for s in trace])


def recompute_grad(span_model, first: int, last: int, x: torch.Tensor, g: torch.Tensor,
                   prompts: torch.Tensor | None = None, lora=None):
    """(dL/dx (B, T, C), dL/dprompts (blocks, B, P, C) or None, dL/dLoRA or None) in float32."""
    return span_grads(span_model, x.float(), g.float(), first, last, None if prompts is None else prompts.float(),
                      None if lora is None else lora.map(torch.Tensor.float))


def lora_error(claimed: torch.Tensor, reference: torch.Tensor) -> float:
    """Relative L2 error of one LoRA gradient tensor (blocks, r, in) / (blocks, out, r), per block."""
    a, b = claimed.float().flatten(1), reference.float().flatten(1)
    return float(((a - b).norm(dim=1) / b.norm(dim=1).clamp_min(1e-12)).max())


def fingerprint(*tensors: torch.Tensor) -> bytes:
    h = hashlib.sha256(b"pollen.audit.v1")
    for t in tensors:
        h.update(hash_tensor(t.float().contiguous()))
    return h.digest()


def audit(store, dispute: dict, evidence_cid: str, receipt_fields, spans: SpanProvider,
          tolerance: float) -> Verdict:
    """Judge one dispute (see the module docstring for the rules), all in this thread."""
    ready = prepare(store, dispute, evidence_cid, receipt_fields, spans)
    return ready if isinstance(ready, Verdict) else judge(ready, spans, tolerance)


def prepare(store, dispute: dict, evidence_cid: str, receipt_fields, spans: SpanProvider):
    """The network and disk half of an audit (no tensor compute): fetch and check the bundle,
    fetch the shards the named block needs. Returns the bundle, or the Verdict already decided
    (abstain: unfetchable; honest: malformed or about something else)."""
    try:
        data = store.cat(evidence_cid)
    except PollenError as exc:
        return Verdict("abstain", None, f"evidence unavailable: {exc}")
    try:
        bundle = ev.from_bytes(data, where=evidence_cid)
    except PollenError as exc:
        return Verdict("honest", None, f"evidence unusable: {exc}")
    if receipt_fields is not None and bundle.receipt.struct_hash() != receipt_fields.struct_hash():
        return Verdict("honest", None, "evidence bundle is about another receipt than the disputed one")
    r = bundle.receipt
    if (r.first_block, r.last_block) != (dispute["first_block"], dispute["last_block"]):
        return Verdict("honest", None, "evidence span differs from the dispute's span")
    if dispute.get("block") is not None and bundle.block != dispute["block"]:
        return Verdict("honest", None, f"evidence names block {bundle.block}, the dispute {dispute['block']}")
    try:
        spans.fetch(r.first_block, r.last_block if r.kind == KIND_BACKWARD else bundle.block + 1)
    except PollenError as exc:
        return Verdict("abstain", None, f"cannot fetch the disputed blocks: {exc}")
    if bundle.adapter:
        try:
            spans.fetch_adapter(bundle.adapter, r.first_block, r.last_block)
        except PollenError as exc:
            return Verdict("abstain", None, f"cannot fetch the adapter {bundle.adapter}: {exc}")
    return bundle


def judge(bundle: ev.Evidence, spans: SpanProvider, tolerance: float) -> Verdict:
    """The compute half of an audit: recompute and compare. The daemon runs it on its watcher
    thread beside the compute loop (weights are only read), so no session waits on an audit."""
    lora = step_lora(bundle, spans)
    if isinstance(lora, Verdict):
        return lora
    if bundle.receipt.kind == KIND_BACKWARD:
        return _judge_backward(bundle, spans, tolerance, lora)
    return _judge_forward(bundle, spans, tolerance, lora)


def step_lora(bundle: ev.Evidence, spans: SpanProvider):
    """The LoRA weights the disputed step ran with (the client's, or a named adapter's) for the
    receipt's blocks; None; or an honest Verdict if they do not fit those blocks."""
    from pollen.model import lora as lora_mod

    r = bundle.receipt
    lora = spans.adapter(bundle.adapter, r.first_block, r.last_block) if bundle.adapter else bundle.lora
    if lora is None:
        return None
    model, lo, _ = spans.get(r.first_block, r.last_block if r.kind == KIND_BACKWARD else bundle.block + 1)
    try:
        lora_mod.check(lora, model.blocks[lo], r.last_block - r.first_block)
    except lora_mod.LoraError as exc:
        return Verdict("honest", None, f"evidence unusable: {exc}")
    return lora


def _judge_forward(bundle: ev.Evidence, spans: SpanProvider, tolerance: float, lora=None) -> Verdict:
    r, upto = bundle.receipt, bundle.block + 1  # blocks [first, named block] are recomputed
    model, lo, _ = spans.get(r.first_block, upto)
    prompts = None if bundle.prompts is None else bundle.prompts[:upto - r.first_block]
    lora = None if lora is None else lora.slice(0, upto - r.first_block)
    output, sketches = recompute(model, lo, lo + upto - r.first_block, bundle.inputs, prompts, lora)
    errors = [judgment.max_error(bundle.sketches[i], sketches[i]) for i in range(upto - r.first_block)]
    where = [r.first_block + i for i in range(len(errors))]
    if upto == r.last_block:
        errors.append(judgment.max_error(bundle.output, output))
        where.append(r.last_block - 1)
    errors.append(judgment.max_error(judgment.sketch(bundle.output), bundle.sketches[-1]))  # self-consistency
    where.append(r.last_block - 1)
    bad = judgment.first_bad_block(errors, tolerance)
    worst = max(errors)
    fp = fingerprint(sketches)
    if bad is None:
        return Verdict("honest", worst, f"blocks {r.first_block}..{bundle.block}: max error {worst:.3g} <= "
                                        f"tolerance {tolerance:g}", fp)
    note = f"block {where[bad]}: error {errors[bad]:.3g} > tolerance {tolerance:g}"
    log.info("dispute audit: %s", note)
    return Verdict("faulty", worst, note, fp, where[bad])


def _judge_backward(bundle: ev.Evidence, spans: SpanProvider, tolerance: float, lora=None) -> Verdict:
    r = bundle.receipt
    model, lo, hi = spans.get(r.first_block, r.last_block)
    grad, grad_prompts, grad_lora = recompute_grad(model, lo, hi, bundle.inputs[0], bundle.grad_output,
                                                   bundle.prompts, lora)
    error = judgment.max_error(bundle.output, grad)
    done = [grad]
    if grad_prompts is not None:
        error = max(error, judgment.max_error(bundle.grad_prompts, grad_prompts))
        done.append(grad_prompts)
    if bundle.grad_lora is not None:  # client LoRA (a named adapter is frozen: no gradient returned)
        for claimed, ref in zip(bundle.grad_lora.tensors(), grad_lora.tensors()):
            error = max(error, lora_error(claimed, ref))
        done += grad_lora.tensors()
    verdict = "faulty" if not error <= tolerance else "honest"
    return Verdict(verdict, error, f"gradient error {error:.3g} vs tolerance {tolerance:g}", fingerprint(*done),
                   r.first_block if verdict == "faulty" else None)
