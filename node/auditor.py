"""Audit one dispute: fetch the evidence by CID, check it against the disputed receipt, recompute
the span on the input history and compare the claimed output within the version's tolerance.

Verdict rules (what an honest auditor votes):
  * evidence missing, malformed, or not matching the receipt (input hash chain, output hash,
    fields) -> not faulty: the challenger did not prove anything;
  * otherwise faulty  <=>  max relative L2 error of the claimed output > tolerance.
Recomputation is always in float32 (the reference), on the auditor's own span when it already
holds those blocks in float32, else on the disputed span fetched by CID for the occasion.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from pollen import evidence as ev
from pollen.errors import PollenError

log = logging.getLogger("pollen.node.auditor")


@dataclass
class Verdict:
    faulty: bool
    error: float | None  # measured relative error (None if nothing was recomputed)
    note: str


class SpanProvider:
    """float32 span models by (first, last): the daemon's own span when it fits, else fetched."""

    def __init__(self, chain, store, version_id: int, cache_dir: str, own=None):
        self.chain, self.store, self.version_id, self.cache_dir = chain, store, version_id, cache_dir
        self.own = own  # (SpanModel, start, end) the daemon serves in float32, or None
        self._loaded: dict[tuple[int, int], object] = {}

    def get(self, first: int, last: int):
        """(span model, local first, local last) able to run blocks [first, last)."""
        if self.own is not None:
            model, start, end = self.own
            if start <= first and last <= end:
                return model, first - start, last - start
        if (first, last) not in self._loaded:
            from pollen.model import load_span
            from pollen.shards import fetch_version_span

            files = fetch_version_span(self.store, self.chain, self.version_id, first, last, self.cache_dir)
            self._loaded = {(first, last): load_span(str(files.folder), first, last, "float32")}
        return self._loaded[(first, last)], 0, last - first


def recompute(span_model, first: int, last: int, inputs: list[torch.Tensor]) -> torch.Tensor:
    """Output of the LAST step, recomputed as one causal parallel forward over all inputs."""
    x = torch.cat([t.float() for t in inputs], dim=1)
    with torch.no_grad():
        y = span_model(x, None, first, last)
    return y[:, -inputs[-1].shape[1]:]


def audit(store, dispute: dict, evidence_cid: str, receipt_fields, spans: SpanProvider,
          tolerance: float) -> Verdict:
    """Judge one dispute (see the module docstring for the rules)."""
    try:
        bundle = ev.get(store, evidence_cid)
    except PollenError as exc:
        return Verdict(False, None, f"evidence unusable: {exc}")
    if receipt_fields is not None and bundle.receipt.struct_hash() != receipt_fields.struct_hash():
        return Verdict(False, None, "evidence bundle is about another receipt than the disputed one")
    r = bundle.receipt
    if (r.first_block, r.last_block) != (dispute["first_block"], dispute["last_block"]):
        return Verdict(False, None, "evidence span differs from the dispute's span")
    model, lo, hi = spans.get(r.first_block, r.last_block)
    reference = recompute(model, lo, hi, bundle.inputs)
    error = ev.relative_error(bundle.outputs[-1], reference)
    faulty = error > tolerance
    note = f"relative error {error:.3g} {'>' if faulty else '<='} tolerance {tolerance:g}"
    log.info("dispute audit: %s", note)
    return Verdict(faulty, error, note)
