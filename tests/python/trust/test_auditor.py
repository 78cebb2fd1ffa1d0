"""node.auditor on a real tiny span and a real embedded store: the verdict rules of judgment v2
(per block, per token, up to the named block), each cheat of node/faults.py run for real."""

from __future__ import annotations

import random

import pytest
import torch

from node.auditor import SpanProvider, audit
from node.faults import Fault, tamper_for
from pollen import evidence as ev
from pollen import judgment
from pollen.receipts import KIND_INFERENCE, Receipt, hash_tensor
from pollen.store import LocalStore

TOL = 0.15
N = 6


@pytest.fixture(scope="module")
def span(tmp_path_factory):
    from pollen.model import load_span
    from pollen.model.tiny import make_checkpoint

    path = make_checkpoint("llama", tmp_path_factory.mktemp("tiny-audit"), seed=7, hidden_size=128,
                           intermediate_size=256, std=0.08)
    return load_span(str(path), 0, N, "float32")


def served(span, fault: str = "", dtype=torch.float32):
    """A 3-step session over blocks [0, 6) (prompt of 4, then 1 token per step) served with
    `fault` on the last step, as the server would sign it; returns the evidence naming block 0
    (the caller re-names)."""
    g = torch.Generator().manual_seed(0)
    inputs = [torch.randn(1, t, span.hidden_size, generator=g).to(dtype) for t in (4, 1, 1)]
    cache = span.new_cache(1, 6)
    tamper = tamper_for(Fault.parse(fault), 0, N, random.Random(1))
    with torch.no_grad():
        for i, x in enumerate(inputs):
            trace: list = []
            y = span(x.float(), cache, trace=trace, tamper=tamper if i == 2 else None).to(dtype)
    sketches = torch.stack(trace)
    r = Receipt(server="0x" + "cd" * 20, version_id=1, first_block=0, last_block=N, term=0, kind=KIND_INFERENCE,
                session_id=b"\3" * 32, step=2, input_hash=ev.input_chain(inputs), output_hash=hash_tensor(y),
                blocks_root=judgment.blocks_root(0, sketches), issued_at=1)
    return ev.Evidence(r, b"\1" * 65, inputs, y, sketches, N - 1)


def judge(span, tmp_path, bundle, block=None):
    store = LocalStore(tmp_path)
    if block is not None:
        bundle.block = block
    d = {"first_block": 0, "last_block": N, "block": bundle.block}
    return audit(store, d, ev.put(store, bundle), bundle.receipt,
                 SpanProvider(None, store, 1, str(tmp_path), own=(span, 0, N)), TOL)


@pytest.mark.parametrize("fault", ["skip:2", "skip:1-3", "swap:3", "noise:4:0.5", "steer:2:0.5", "nan:1",
                                   "garble:1.0"])
def test_each_cheat_is_faulty_and_the_first_wrong_block_is_named(span, tmp_path, fault):
    verdict = judge(span, tmp_path, served(span, fault))
    assert verdict.verdict == "faulty", verdict
    first = Fault.parse(fault).first
    assert verdict.bad_block == (N - 1 if first < 0 else first), verdict


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_honest_servers_are_honest_whatever_block_is_named(span, tmp_path, dtype):
    for block in range(N):
        verdict = judge(span, tmp_path, served(span, "", dtype), block)
        assert verdict.verdict == "honest" and verdict.error <= TOL, (block, verdict)
        assert verdict.fingerprint != b"\0" * 32


def test_naming_a_block_before_the_cheat_is_not_faulty(span, tmp_path):
    """Blocks after the named one are not recomputed: naming too early proves nothing."""
    assert judge(span, tmp_path, served(span, "skip:4"), block=2).verdict == "honest"
    assert judge(span, tmp_path, served(span, "skip:4"), block=4).verdict == "faulty"


def test_unfetchable_evidence_abstains_malformed_or_mismatched_is_honest(span, tmp_path):
    store = LocalStore(tmp_path)
    bundle = served(span, "skip:2")
    provider = SpanProvider(None, store, 1, str(tmp_path), own=(span, 0, N))
    d = {"first_block": 0, "last_block": N, "block": bundle.block}
    missing = audit(store, d, "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", bundle.receipt,
                    provider, TOL)
    assert missing.verdict == "abstain" and "unavailable" in missing.note
    junk = store.add_bytes(b"\0" * 64).cid
    assert audit(store, d, junk, bundle.receipt, provider, TOL).verdict == "honest"
    other = served(span, "", torch.bfloat16).receipt
    wrong = audit(store, d, ev.put(store, bundle), other, provider, TOL)
    assert wrong.verdict == "honest" and "another receipt" in wrong.note
    elsewhere = audit(store, {"first_block": 0, "last_block": 3, "block": N - 1}, ev.put(store, bundle),
                      bundle.receipt, provider, TOL)
    assert elsewhere.verdict == "honest" and "span differs" in elsewhere.note
    renamed = audit(store, {**d, "block": 1}, ev.put(store, bundle), bundle.receipt, provider, TOL)
    assert renamed.verdict == "honest" and "names block" in renamed.note


def test_a_framer_cannot_make_honest_work_look_wrong(span, tmp_path):
    """Swapping in other sketches or outputs breaks the receipt's commitments: refused."""
    bundle = served(span, "")
    bundle.sketches = bundle.sketches * 1.5
    with pytest.raises(ev.EvidenceError, match="blocksRoot"):
        bundle.check()
    bundle = served(span, "")
    bundle.output = bundle.output + 1.0
    with pytest.raises(ev.EvidenceError, match="outputHash"):
        bundle.check()


def backward_bundle(span, corrupt: float):
    from pollen.receipts import KIND_BACKWARD

    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 5, span.hidden_size, generator=g)
    grad_out = torch.randn(x.shape, generator=g)
    trace: list = []
    with torch.enable_grad():
        xi = x.clone().requires_grad_(True)
        y = span(xi, None, trace=trace)
        (grad,) = torch.autograd.grad(y, xi, grad_outputs=grad_out)
    grad = grad + corrupt * grad.std() * torch.randn(grad.shape, generator=g)
    sketches = torch.stack(trace)
    r = Receipt(server="0x" + "cd" * 20, version_id=1, first_block=0, last_block=N, term=0, kind=KIND_BACKWARD,
                session_id=b"\4" * 32, step=0, input_hash=ev.input_hash_of(KIND_BACKWARD, [x], grad_out),
                output_hash=hash_tensor(grad), blocks_root=judgment.blocks_root(0, sketches), issued_at=1)
    return ev.Evidence(r, b"\1" * 65, [x], grad, sketches, 0, grad_out)


def test_a_backward_receipt_is_disputable(span, tmp_path):
    """Backward is judged on the whole returned gradient: honest passes, a wrong gradient is faulty."""
    assert judge(span, tmp_path, backward_bundle(span, 0.0)).verdict == "honest"
    assert judge(span, tmp_path, backward_bundle(span, 1.0)).verdict == "faulty"
