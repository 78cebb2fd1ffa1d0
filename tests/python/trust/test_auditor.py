"""node.auditor on a real tiny span and a real embedded store: the verdict rules."""

from __future__ import annotations

import pytest
import torch

from node.auditor import SpanProvider, audit
from pollen import evidence as ev
from pollen.receipts import Receipt, hash_tensor
from pollen.store import LocalStore


@pytest.fixture(scope="module")
def span(tmp_path_factory):
    from pollen.model import load_span
    from pollen.model.tiny import make_checkpoint

    path = make_checkpoint("llama", tmp_path_factory.mktemp("tiny-audit"), seed=7)
    return load_span(str(path), 0, 6, "float32")


def claim(span, corrupt: float = 0.0, dtype=torch.float32):
    """Evidence of a 3-step session over blocks [0, 6): prompt of 4, then 1 token per step."""
    g = torch.Generator().manual_seed(0)
    inputs = [torch.randn(1, t, span.hidden_size, generator=g).to(dtype) for t in (4, 1, 1)]
    cache = span.new_cache(1, 6)
    with torch.no_grad():
        outputs = [span(x.float(), cache).to(dtype) for x in inputs]
    outputs[-1] = outputs[-1] + corrupt * outputs[-1].norm() / outputs[-1].numel() ** 0.5 * torch.randn(
        outputs[-1].shape, generator=g).to(dtype)
    r = Receipt(server="0x" + "cd" * 20, version_id=1, first_block=0, last_block=6, session_id=b"\3" * 32,
                step=2, input_hash=ev.input_chain(inputs), output_hash=hash_tensor(outputs[-1]), issued_at=1)
    return ev.Evidence(r, b"\1" * 65, inputs, outputs)


DISPUTE = {"first_block": 0, "last_block": 6}


@pytest.mark.parametrize("corrupt, dtype, faulty", [(0.0, torch.float32, False), (0.0, torch.bfloat16, False),
                                                    (0.5, torch.float32, True)])
def test_verdict_is_the_tolerance_test(span, tmp_path, corrupt, dtype, faulty):
    store = LocalStore(tmp_path)
    bundle = claim(span, corrupt, dtype)
    verdict = audit(store, DISPUTE, ev.put(store, bundle), bundle.receipt,
                    SpanProvider(None, store, 1, str(tmp_path), own=(span, 0, 6)), tolerance=0.25)
    assert verdict.faulty is faulty and (verdict.error > 0.25) is faulty


def test_unusable_or_mismatched_evidence_is_not_faulty(span, tmp_path):
    store = LocalStore(tmp_path)
    bundle = claim(span, 0.5)
    provider = SpanProvider(None, store, 1, str(tmp_path), own=(span, 0, 6))
    missing = audit(store, DISPUTE, "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",
                    bundle.receipt, provider, 0.25)
    assert not missing.faulty and "evidence unusable" in missing.note
    other = claim(span, 0.5, torch.bfloat16).receipt
    wrong = audit(store, DISPUTE, ev.put(store, bundle), other, provider, 0.25)
    assert not wrong.faulty and "another receipt" in wrong.note
    elsewhere = audit(store, {"first_block": 0, "last_block": 3}, ev.put(store, bundle), bundle.receipt,
                      provider, 0.25)
    assert not elsewhere.faulty and "span differs" in elsewhere.note
