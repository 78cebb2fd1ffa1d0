"""A contiguous span of transformer blocks plus its preallocated KV cache."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from pollen.model.family import Family
from pollen.model.lora import Lora
from pollen.model.lora import active as lora_active
from pollen.model.ragged import RaggedLayer, join_contexts

# (local block index, block input (B, T, C), run(j=None) computing the block) -> output (B, T, C)
Tamper = Callable[[int, torch.Tensor, Callable[[], torch.Tensor]], torch.Tensor]


class SpanCache:
    """KV slabs for one session: k, v each (n_blocks, B, kv_heads, max_length, head_dim)."""

    def __init__(self, n_blocks: int, batch: int, kv_heads: int, head_dim: int,
                 max_length: int, dtype: torch.dtype, device: torch.device | str = "cpu"):
        shape = (n_blocks, batch, kv_heads, max_length, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.length = 0  # tokens already cached
        self.max_length = max_length
        self.batch = batch

    def layer(self, i: int):
        return self.k[i], self.v[i]

    @staticmethod
    def nbytes(n_blocks: int, batch: int, kv_heads: int, head_dim: int, max_length: int,
               dtype: torch.dtype) -> int:
        itemsize = torch.empty((), dtype=dtype).element_size()
        return 2 * n_blocks * batch * kv_heads * max_length * head_dim * itemsize


class SpanModel(nn.Module):
    """Blocks [start, end) of one model; forward with or without a KV cache."""

    def __init__(self, family: Family, config, start: int, end: int):
        super().__init__()
        self.family, self.config, self.start, self.end = family, config, start, end
        self.blocks = nn.ModuleList(family.block_cls(config) for _ in range(start, end))
        self.positions = family.position_cls(config)
        self.compute_dtype = torch.float32  # activations / KV cache (weights may be quantised)
        self.device = torch.device("cpu")  # where weights, KV caches and compute live

    @property
    def hidden_size(self) -> int:
        return int(self.config.hidden_size)

    def forward(self, x: torch.Tensor, cache: SpanCache | None = None,
                first: int = 0, last: int | None = None, trace: list | None = None,
                tamper: Tamper | None = None, prompts: torch.Tensor | None = None,
                lora: Lora | None = None) -> torch.Tensor:
        """x: (B, T, C) -> (B, T, C) through local blocks [first, last) of this span.

        prompts: deep prompts (last - first, B, P, C), P <= T: before block first+i,
        prompts[i] is added to x[:, :P] (Petals' deep prompt tuning; out of place, so autograd
        gives their gradient). The caller checks shapes and that x starts at position 0.

        lora: client LoRA weights for blocks [first, last) (pollen.model.lora; the caller checks them).

        trace: if a list, each block's output sketch (B, T, K) is appended (pollen.judgment).
        tamper: FAULT INJECTION / cheat simulation only: tamper(i, x, run) returns block i's
        output given its input x and `run()` (the honest computation; `run(j)` runs block j's
        weights in block i's place); None = honest.
        """
        last = len(self.blocks) if last is None else last
        offset = cache.length if cache is not None else 0
        ctx = self._context(x, offset)
        with lora_active(self.blocks[first:last], lora):
            x = self._run(x, ctx, cache, offset, first, last, trace, tamper, prompts)
        if cache is not None:
            cache.length += x.shape[1]
        return x

    def _context(self, x: torch.Tensor, offset: int):
        """The positions context (rope cos/sin, ALiBi) of x (B, T, C) starting at position offset."""
        B, T, _ = x.shape
        pos = (offset + torch.arange(T, device=x.device)).unsqueeze(0).expand(B, T)
        return self.positions(x, pos)

    def forward_many(self, xs: list[torch.Tensor], caches: list[SpanCache], first: int = 0,
                     last: int | None = None, traces: list[list] | None = None,
                     lora: Lora | None = None) -> list[torch.Tensor]:
        """Several sessions' steps as one batch: xs[i] (B_i, T, C) continues caches[i] (ragged
        lengths) -> outputs [(B_i, T, C)]. The projections and MLP run once on the stacked
        (sum B_i, T, C) rows; attention runs per session over its own cache. Each output equals
        forward(xs[i], caches[i], ...) alone (bit for bit where the BLAS is row-independent).
        traces[i], if given, gets session i's per-block sketches (B_i, T, K)."""
        from pollen.judgment import sketch

        last = len(self.blocks) if last is None else last
        T = xs[0].shape[1]
        if any(x.shape[1] != T for x in xs):
            raise ValueError(f"forward_many needs one sequence length, got {[x.shape[1] for x in xs]}")
        rows, offsets = [x.shape[0] for x in xs], [c.length for c in caches]
        ctx = [self._context(x, o) for x, o in zip(xs, offsets)]
        joined = join_contexts(ctx, rows)
        x = torch.cat(xs)  # (sum B_i, T, C)
        with lora_active(self.blocks[first:last], lora):
            for i in range(first, last):
                layer = RaggedLayer(rows, [c.layer(i) for c in caches], offsets, ctx, joined)
                x = self.blocks[i](x, None, layer, 0)
                if traces is not None:  # (sum B_i, T, K) split into each session's own rows
                    for trace, part in zip(traces, sketch(x).split(rows)):
                        trace.append(part)
        for c in caches:
            c.length += T
        return list(x.split(rows))

    def _run(self, x, ctx, cache, offset, first, last, trace, tamper, prompts) -> torch.Tensor:
        from pollen.judgment import sketch

        for i in range(first, last):
            kv = cache.layer(i) if cache is not None else None
            if prompts is not None:
                x = add_prompt(x, prompts[i - first])
            if tamper is None:
                x = self.blocks[i](x, ctx, kv, offset)
            else:
                def run(j: int | None = None, x=x, i=i, kv=kv) -> torch.Tensor:
                    return self.blocks[i if j is None else j](x, ctx, kv, offset)
                x = tamper(i, x, run)
            if trace is not None:
                trace.append(sketch(x))
        return x

    def new_cache(self, batch: int, max_length: int) -> SpanCache:
        kv_heads, head_dim = self.family.kv_heads_dim(self.config)
        return SpanCache(len(self.blocks), batch, kv_heads, head_dim, max_length, self.compute_dtype, self.device)


def add_prompt(x: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
    """x (B, T, C) with prompt (B, P, C) added to its first P positions (new tensor)."""
    P = prompt.shape[1]
    return torch.cat((x[:, :P] + prompt.to(x.dtype), x[:, P:]), dim=1)


def span_grads(run, x: torch.Tensor, g: torch.Tensor, first: int, last: int,
               prompts: torch.Tensor | None = None, lora: Lora | None = None):
    """(dL/dx (B, T, C), dL/dprompts (blocks, B, P, C) or None, dL/dLoRA or None) of
    y = run(x, None, first, last, prompts=, lora=) for dL/dy = g (B, T, C). The LoRA gradient is
    a Lora of the same layout holding dL/dA, dL/dB."""
    with torch.enable_grad():
        x = x.clone().requires_grad_(True)
        p = None if prompts is None else prompts.clone().requires_grad_(True)
        w = None if lora is None else lora.map(lambda t: t.clone().requires_grad_(True))
        leaves = [x] + ([p] if p is not None else []) + (w.tensors() if w is not None else [])
        y = run(x, None, first, last, prompts=p, lora=w)
        grads = list(torch.autograd.grad(y, leaves, grad_outputs=g))
    gx = grads.pop(0)
    gp = grads.pop(0) if p is not None else None
    return gx, gp, (None if w is None else w.with_tensors(grads))
