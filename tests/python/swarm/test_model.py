"""Unit tests of pollen.model: our span blocks reproduce transformers exactly (in one process)."""

from __future__ import annotations

import pytest
import torch

from pollen.model import ModelError, load_client, load_span, split_checkpoint


def hf_model(path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()


def local_logits(path, input_ids, spans):
    """Logits from our client parts + spans, prefill then token-by-token with KV caches."""
    _, _, client = load_client(path)
    models = [load_span(path, a, b) for a, b in spans]
    caches = [m.new_cache(input_ids.shape[0], 64) for m in models]
    out = []
    with torch.no_grad():
        for t in range(input_ids.shape[1]):
            h = client.embed(input_ids[:, t:t + 1] if t else input_ids[:, :1])
            for m, c in zip(models, caches):
                h = m(h, c)
            out.append(client.head(h))
    return torch.cat(out, dim=1)


@pytest.mark.parametrize("name", ["tiny_llama", "tiny_bloom"])
def test_spans_match_transformers(name, request):
    path = request.getfixturevalue(name)
    ids = torch.randint(0, 320, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = hf_model(path)(ids).logits
    got = local_logits(path, ids, [(0, 2), (2, 5), (5, 6)])
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4), (got - expected).abs().max()
    # parallel (no cache) forward of a whole sequence through one span
    _, _, client = load_client(path)
    span = load_span(path, 0, 6)
    with torch.no_grad():
        par = client.head(span(client.embed(ids)))
    assert torch.allclose(par, expected, atol=1e-4, rtol=1e-4)


def test_prefill_then_decode_matches_transformers(tiny_llama):
    ids = torch.randint(0, 320, (1, 9), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = hf_model(tiny_llama)(ids).logits
        _, _, client = load_client(tiny_llama)
        span = load_span(tiny_llama, 0, 6)
        cache = span.new_cache(1, 32)
        first = client.head(span(client.embed(ids[:, :5]), cache))
        second = client.head(span(client.embed(ids[:, 5:]), cache))  # multi-token step, offset 5
    got = torch.cat([first, second], dim=1)
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4)


def test_split_checkpoint_loads_same_weights(tiny_bloom, tmp_path):
    out = split_checkpoint(tiny_bloom, tmp_path / "split").folder
    assert len(list((out / "blocks").glob("*.safetensors"))) == 6
    a, b = load_span(tiny_bloom, 1, 4), load_span(out, 1, 4)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    assert torch.equal(load_client(out)[2].lm_head.weight, load_client(tiny_bloom)[2].lm_head.weight)


def test_bad_span_rejected(tiny_llama):
    with pytest.raises(ModelError, match="outside"):
        load_span(tiny_llama, 4, 9)
    with pytest.raises(ModelError, match="config.json"):
        load_span(tiny_llama / "nope", 0, 1)


def test_smollm2_blocks_match_transformers(smollm2):
    ids = torch.tensor([[1, 504, 3458, 314, 260, 1345, 282, 4649]])
    with torch.no_grad():
        expected = hf_model(smollm2)(ids).logits
    got = local_logits(smollm2, ids, [(0, 15), (15, 30)])
    assert (got - expected).abs().max() < 1e-4


@pytest.mark.parametrize("mode,bound", [("int8", 0.05), ("nf4", 0.25)])
def test_quantized_span_close_to_fp32(smollm2, mode, bound):
    from pollen.model.quant import quantize_span

    x = torch.randn(1, 5, 576, generator=torch.Generator().manual_seed(0))
    exact = load_span(smollm2, 0, 2)
    quant = quantize_span(load_span(smollm2, 0, 2), mode)
    with torch.no_grad():
        a, b = exact(x), quant(x, quant.new_cache(1, 8))
    rel = ((a - b).norm() / a.norm()).item()
    assert 0 < rel < bound, rel
    assert quant.new_cache(1, 4).k.dtype == torch.float32


def test_bf16_span_close_to_fp32(smollm2):
    ids = torch.tensor([[1, 504, 3458, 314, 260, 1345]])
    _, _, client = load_client(smollm2)
    h = client.embed(ids)
    with torch.no_grad():
        a = load_span(smollm2, 0, 10)(h)
        b = load_span(smollm2, 0, 10, "bfloat16")(h.bfloat16()).float()
    assert ((a - b).norm() / a.norm()).item() < 0.05
