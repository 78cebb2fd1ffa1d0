"""Llama-architecture transformer block (SmolLM2, Llama 2/3, ...), written for span serving.

Parameter names match transformers' `LlamaDecoderLayer`, so a checkpoint's
`model.layers.{i}.*` tensors load directly. The KV cache is a preallocated slab owned by the
caller (see pollen.model.span), not a transformers Cache object.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pollen.model.ragged import RaggedLayer


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # x: (B, nh, T, hd); cos/sin: (B, T, hd)
    return x * cos[:, None] + rotate_half(x) * sin[:, None]


class RopeTable(nn.Module):
    """cos/sin per position, precomputed with transformers' own rope code (all rope types).

    transformers computes inv_freq[i] * pos in fp32 per call; each entry is a single product,
    so a table of the same products is bit-identical and saves ~0.1 ms per decode step.
    """

    def __init__(self, config):
        super().__init__()
        from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

        self.rotary = LlamaRotaryEmbedding(config)
        self.dynamic = self.rotary.rope_type == "dynamic"
        n = int(config.max_position_embeddings)
        cos, sin = self.rotary(torch.zeros(1, dtype=torch.float32), torch.arange(n)[None])
        self.register_buffer("cos", cos[0], persistent=False)  # (max_pos, hd) fp32
        self.register_buffer("sin", sin[0], persistent=False)

    def forward(self, x: torch.Tensor, positions: torch.Tensor):
        # positions: (B, T) int64 -> cos, sin: (B, T, hd) in x.dtype
        if self.dynamic or int(positions.max()) >= self.cos.shape[0]:
            return self.rotary(x, positions)
        return self.cos[positions].to(x.dtype), self.sin[positions].to(x.dtype)


class LlamaAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.n_head = config.num_attention_heads
        self.n_kv = config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.n_head
        bias = bool(getattr(config, "attention_bias", False))
        hidden, hd = config.hidden_size, self.head_dim
        self.q_proj = nn.Linear(hidden, self.n_head * hd, bias=bias)
        self.k_proj = nn.Linear(hidden, self.n_kv * hd, bias=bias)
        self.v_proj = nn.Linear(hidden, self.n_kv * hd, bias=bias)
        self.o_proj = nn.Linear(self.n_head * hd, hidden, bias=bias)

    def forward(self, x, rope, cache, offset: int):
        # x: (B, T, C); cache: (k_slab, v_slab) each (B, n_kv, max_len, hd), a RaggedLayer
        # (several sessions stacked along B, rope and offset per session) or None
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.n_kv, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.n_kv, self.head_dim).transpose(1, 2)
        ragged = isinstance(cache, RaggedLayer)
        cos, sin = cache.joined if ragged else rope  # (B, T, hd): rope is per row, so stacked once
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if ragged:  # each session attends over its own cache
            y = torch.cat([cached_attention(qi, ki, vi, kv, off) for qi, ki, vi, _, kv, off in cache.parts(q, k, v)])
        else:
            y = cached_attention(q, k, v, cache, offset)  # (B, nh, T, hd)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, -1))


def cached_attention(q, k, v, cache, offset: int) -> torch.Tensor:
    """q (B, nh, T, hd), new k/v (B, nkv, T, hd) appended to cache (k_slab, v_slab) at offset
    (None: no cache) -> attention output (B, nh, T, hd)."""
    if cache is not None:
        T = q.shape[2]
        k_slab, v_slab = cache
        k_slab[:, :, offset:offset + T] = k
        v_slab[:, :, offset:offset + T] = v
        k, v = k_slab[:, :, :offset + T], v_slab[:, :, :offset + T]
    return causal_attention(q, k, v, offset)


def causal_attention(q, k, v, offset: int) -> torch.Tensor:
    """q: (B, nh, T, hd), k/v: (B, nkv, offset+T, hd) -> (B, nh, T, hd); GQA by repetition."""
    rep = q.shape[1] // k.shape[1]
    if rep > 1:
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
    T = q.shape[2]
    if T == 1:
        return F.scaled_dot_product_attention(q, k, v)
    if offset == 0:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    S = k.shape[2]
    mask = torch.arange(S, device=q.device)[None, :] <= (offset + torch.arange(T, device=q.device))[:, None]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


class LlamaMLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        bias = bool(getattr(config, "mlp_bias", False))
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=bias)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=bias)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=bias)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaBlock(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = LlamaAttention(config)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = LlamaMLP(config)

    def forward(self, x, ctx, cache, offset: int):
        # x: (B, T, C) -> (B, T, C)
        x = x + self.self_attn(self.input_layernorm(x), ctx, cache, offset)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaClient(nn.Module):
    """Client-side parts: token embeddings, final norm, LM head (maybe tied)."""

    def __init__(self, config):
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.embed_tokens.weight

    def embed(self, input_ids):  # (B, T) -> (B, T, C)
        return self.embed_tokens(input_ids)

    def head(self, h):  # (B, T, C) -> (B, T, V)
        return self.lm_head(self.norm(h))
