"""BLOOM transformer block (ALiBi positions, fused QKV, LayerNorm, tanh-GELU).

Parameter names match transformers' `BloomBlock`, so `transformer.h.{i}.*` tensors load
directly. Same preallocated-slab KV cache as the Llama block.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from pollen.model.ragged import RaggedLayer


def alibi_slopes(n_head: int) -> torch.Tensor:
    """Per-head ALiBi slopes, (n_head,) fp32, as in the BLOOM paper (non-power-of-2 aware)."""
    closest = 2 ** math.floor(math.log2(n_head))
    base = 2 ** (-(2 ** -(math.log2(closest) - 3)))
    slopes = [base ** p for p in range(1, closest + 1)]
    if closest != n_head:
        extra_base = 2 ** (-(2 ** -(math.log2(2 * closest) - 3)))
        n_extra = min(closest, n_head - closest)
        slopes += [extra_base ** p for p in range(1, 1 + 2 * n_extra, 2)]
    return torch.tensor(slopes, dtype=torch.float32)


class AlibiTable(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.register_buffer("slopes", alibi_slopes(config.n_head), persistent=False)

    def forward(self, x: torch.Tensor, positions: torch.Tensor):
        # positions: (B, T) of the *queries*; keys span 0..last -> bias (nh, 1, S) in x.dtype
        S = int(positions[0, -1]) + 1
        keys = torch.arange(S, dtype=torch.float32, device=x.device)
        return (self.slopes[:, None, None] * keys[None, None, :]).to(x.dtype)


def bloom_gelu(x: torch.Tensor) -> torch.Tensor:
    return x * 0.5 * (1.0 + torch.tanh(0.79788456 * x * (1 + 0.044715 * x * x)))


class BloomAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.n_head = config.n_head
        self.head_dim = config.hidden_size // config.n_head
        self.query_key_value = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, x, alibi, cache, offset: int):
        # x: (B, T, C); alibi: (nh, 1, S) with S = offset + T; cache: (k_slab, v_slab), a
        # RaggedLayer (several sessions stacked along B, alibi and offset per session) or None
        B, T, C = x.shape
        qkv = self.query_key_value(x).view(B, T, self.n_head, 3, self.head_dim)
        q, k, v = (qkv[..., i, :].transpose(1, 2) for i in range(3))  # (B, nh, T, hd)
        if isinstance(cache, RaggedLayer):
            y = torch.cat([self._attend(*part) for part in cache.parts(q, k, v)])
        else:
            y = self._attend(q, k, v, alibi, cache, offset)  # (B, nh, T, hd)
        return self.dense(y.transpose(1, 2).reshape(B, T, C))

    def _attend(self, q, k, v, alibi, cache, offset: int) -> torch.Tensor:
        """One session: append k/v to its cache, attend with ALiBi -> (B, nh, T, hd)."""
        T = q.shape[2]
        if cache is not None:
            k_slab, v_slab = cache
            k_slab[:, :, offset:offset + T] = k
            v_slab[:, :, offset:offset + T] = v
            k, v = k_slab[:, :, :offset + T], v_slab[:, :, :offset + T]
        scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(self.head_dim)) + alibi
        if T > 1:  # causal mask; a single new token sees every cached key
            S = k.shape[2]
            allowed = torch.arange(S, device=q.device)[None, :] <= (offset + torch.arange(T, device=q.device))[:, None]
            scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
        probs = F.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
        return torch.matmul(probs, v)  # (B, nh, T, hd)


class BloomMLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense_h_to_4h = nn.Linear(config.hidden_size, 4 * config.hidden_size)
        self.dense_4h_to_h = nn.Linear(4 * config.hidden_size, config.hidden_size)

    def forward(self, x):
        return self.dense_4h_to_h(bloom_gelu(self.dense_h_to_4h(x)))


class BloomBlock(nn.Module):
    def __init__(self, config):
        super().__init__()
        eps = config.layer_norm_epsilon
        self.input_layernorm = nn.LayerNorm(config.hidden_size, eps=eps)
        self.self_attention = BloomAttention(config)
        self.post_attention_layernorm = nn.LayerNorm(config.hidden_size, eps=eps)
        self.mlp = BloomMLP(config)
        self.post_ln_residual = bool(config.apply_residual_connection_post_layernorm)

    def forward(self, x, ctx, cache, offset: int):
        # x: (B, T, C) -> (B, T, C)
        ln = self.input_layernorm(x)
        h = (ln if self.post_ln_residual else x) + self.self_attention(ln, ctx, cache, offset)
        ln2 = self.post_attention_layernorm(h)
        return (ln2 if self.post_ln_residual else h) + self.mlp(ln2)


class BloomClient(nn.Module):
    """Client-side parts: embeddings + their LayerNorm, final LayerNorm, tied LM head."""

    def __init__(self, config):
        super().__init__()
        eps = config.layer_norm_epsilon
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.word_embeddings_layernorm = nn.LayerNorm(config.hidden_size, eps=eps)
        self.ln_f = nn.LayerNorm(config.hidden_size, eps=eps)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.word_embeddings.weight

    def embed(self, input_ids):  # (B, T) -> (B, T, C)
        return self.word_embeddings_layernorm(self.word_embeddings(input_ids))

    def head(self, h):  # (B, T, C) -> (B, T, V)
        return self.lm_head(self.ln_f(h))
