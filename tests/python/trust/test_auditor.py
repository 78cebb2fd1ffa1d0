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


# ---- deep prompts: the receipt commits to them (inputHash), the auditor recomputes with them ----
P = 2  # pre_seq_len


def prompted_session(span, fault: str = "", ignore_prompts: bool = False):
    """The 3-step session of `served` with deep prompts (N, 1, P, C) on step 0; `fault` cheats on
    step 0 (where the prompts act); `ignore_prompts`: the server signs for prompts it never applied."""
    g = torch.Generator().manual_seed(5)
    inputs = [torch.randn(1, t, span.hidden_size, generator=g) for t in (4, 1, 1)]
    prompts = torch.randn(N, 1, P, span.hidden_size, generator=g)
    cache = span.new_cache(1, 6)
    tamper = tamper_for(Fault.parse(fault), 0, N, random.Random(1))
    outs, traces = [], []
    with torch.no_grad():
        for i, x in enumerate(inputs):
            trace: list = []
            used = prompts if i == 0 and not ignore_prompts else None
            outs.append(span(x, cache, trace=trace, tamper=tamper if i == 0 else None, prompts=used))
            traces.append(torch.stack(trace))
    return inputs, prompts, outs, traces


def prompted_bundle(span, step: int, **cheat):
    inputs, prompts, outs, traces = prompted_session(span, **cheat)
    r = Receipt(server="0x" + "cd" * 20, version_id=1, first_block=0, last_block=N, term=0, kind=KIND_INFERENCE,
                session_id=b"\5" * 32, step=step, input_hash=ev.input_chain(inputs[:step + 1], prompts),
                output_hash=hash_tensor(outs[step]), blocks_root=judgment.blocks_root(0, traces[step]), issued_at=1)
    return ev.Evidence(r, b"\1" * 65, inputs[:step + 1], outs[step], traces[step], N - 1, prompts=prompts)


@pytest.mark.parametrize("step", [0, 2])
def test_a_prompted_step_is_honest_and_its_bundle_round_trips(span, tmp_path, step):
    bundle = prompted_bundle(span, step)
    back = ev.from_bytes(ev.to_bytes(bundle))
    assert torch.equal(back.prompts, bundle.prompts)
    assert b"pollen.evidence/3" in ev.to_bytes(bundle) and b"pollen.evidence/2" in ev.to_bytes(served(span))
    verdict = judge(span, tmp_path, bundle)
    assert verdict.verdict == "honest" and verdict.error <= TOL, verdict


@pytest.mark.parametrize("step,cheat", [(0, {"fault": "skip:2"}), (0, {"fault": "noise:3:0.5"}),
                                       (0, {"ignore_prompts": True}), (2, {"ignore_prompts": True})])
def test_a_tampered_prompted_step_is_faulty(span, tmp_path, step, cheat):
    """The cheated step itself, and a server that signs for prompts it did not apply (caught at
    that step and at a later one, whose keys and values the prompts shaped)."""
    verdict = judge(span, tmp_path, prompted_bundle(span, step, **cheat))
    assert verdict.verdict == "faulty", verdict


def test_the_receipt_commits_to_the_prompts(span):
    """Other prompts (or none) do not hash to the receipt's inputHash: a framer cannot swap them."""
    bundle = prompted_bundle(span, 2)
    bundle.prompts = bundle.prompts + 0.1
    with pytest.raises(ev.EvidenceError, match="inputHash"):
        bundle.check()
    bundle.prompts = None
    with pytest.raises(ev.EvidenceError, match="inputHash"):
        bundle.check()
    bundle = prompted_bundle(span, 0)
    bundle.prompts = bundle.prompts[:, :, :1]  # shape checked before hashing
    bundle.prompts = torch.zeros(N - 1, 1, P, span.hidden_size)
    with pytest.raises(ev.EvidenceError, match="do not fit"):
        bundle.check()


def prompted_backward_bundle(span, corrupt_input: float = 0.0, corrupt_prompts: float = 0.0):
    from pollen.receipts import KIND_BACKWARD, fold_grads

    g = torch.Generator().manual_seed(6)
    x = torch.randn(2, 5, span.hidden_size, generator=g)
    prompts = torch.randn(N, 2, P, span.hidden_size, generator=g)
    grad_out = torch.randn(x.shape, generator=g)
    trace: list = []
    with torch.enable_grad():
        xi, pi = x.clone().requires_grad_(True), prompts.clone().requires_grad_(True)
        y = span(xi, None, trace=trace, prompts=pi)
        grad, grad_p = torch.autograd.grad(y, (xi, pi), grad_outputs=grad_out)
    grad = grad + corrupt_input * grad.std() * torch.randn(grad.shape, generator=g)
    grad_p = grad_p + corrupt_prompts * grad_p.std() * torch.randn(grad_p.shape, generator=g)
    sketches = torch.stack(trace)
    r = Receipt(server="0x" + "cd" * 20, version_id=1, first_block=0, last_block=N, term=0, kind=KIND_BACKWARD,
                session_id=b"\6" * 32, step=0, input_hash=ev.input_hash_of(KIND_BACKWARD, [x], grad_out, prompts),
                output_hash=fold_grads(hash_tensor(grad), grad_p), blocks_root=judgment.blocks_root(0, sketches),
                issued_at=1)
    return ev.Evidence(r, b"\1" * 65, [x], grad, sketches, 0, grad_out, prompts, grad_p)


def test_a_prompted_backward_is_disputable_on_both_gradients(span, tmp_path):
    assert judge(span, tmp_path, prompted_backward_bundle(span)).verdict == "honest"
    assert judge(span, tmp_path, prompted_backward_bundle(span, corrupt_input=1.0)).verdict == "faulty"
    assert judge(span, tmp_path, prompted_backward_bundle(span, corrupt_prompts=1.0)).verdict == "faulty"
    bundle = prompted_backward_bundle(span)
    bundle.grad_prompts = None  # the outputHash commits to the prompts' gradient too
    with pytest.raises(ev.EvidenceError, match="grad_prompts"):
        bundle.check()
