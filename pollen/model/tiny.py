"""Small random-weight checkpoints (tests, benchmarks): a real transformers checkpoint on disk."""

from __future__ import annotations

from pathlib import Path

import torch

TINY_LLAMA = dict(hidden_size=64, intermediate_size=160, num_hidden_layers=6, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=320, max_position_embeddings=512,
                  tie_word_embeddings=False, rms_norm_eps=1e-5)
TINY_BLOOM = dict(hidden_size=64, n_head=4, n_layer=6, vocab_size=320, tie_word_embeddings=False)
# The benchmark's "tiny Llama" (58M params): hidden 512, 8 layers, SmolLM2's vocabulary size.
BENCH_LLAMA = dict(hidden_size=512, intermediate_size=1536, num_hidden_layers=8, num_attention_heads=8,
                   num_key_value_heads=4, vocab_size=49152, max_position_embeddings=2048,
                   tie_word_embeddings=True, rms_norm_eps=1e-5)


def make_checkpoint(family: str, out_dir: str | Path, seed: int = 0, std: float = 0.3, **overrides) -> Path:
    """Save a random `family` ("llama" / "bloom") model with transformers; returns out_dir."""
    from transformers import BloomConfig, BloomForCausalLM, LlamaConfig, LlamaForCausalLM

    out_dir = Path(out_dir)
    torch.manual_seed(seed)
    if family == "llama":
        model = LlamaForCausalLM(LlamaConfig(**{**TINY_LLAMA, **overrides}))
    elif family == "bloom":
        model = BloomForCausalLM(BloomConfig(**{**TINY_BLOOM, **overrides}))
    else:
        raise ValueError(f"unknown family {family!r}")
    with torch.no_grad():  # default init makes near-constant tiny models; widen it so greedy
        # decoding produces varied tokens (a stronger equality test)
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, std)
    model.save_pretrained(str(out_dir))
    return out_dir
