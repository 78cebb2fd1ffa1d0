"""Several inference sessions stacked in one batch, each over its own KV cache (batched decode).

The server's batched sessions (node/batching.py) stack compatible sessions' steps along the batch
dimension; a block then receives a RaggedLayer as its `cache`: row-wise work (projections, MLP,
norms) runs once on the stacked rows, attention runs per session over its own cached length.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class RaggedLayer:
    """One layer of several sessions stacked along the batch: rows[i] rows of session i, which
    attends over its own KV slabs kv[i] (each (rows[i], kv_heads, max_length, head_dim)) holding
    offsets[i] cached tokens, with its own positions context ctx[i]; `joined`: the contexts
    concatenated along the batch when they are per-row tensors (rope cos/sin), else None.
    Passed as a block's `cache`."""
    rows: list[int]
    kv: list[tuple[torch.Tensor, torch.Tensor]]
    offsets: list[int]
    ctx: list
    joined: tuple | None = None

    def parts(self, *stacked: torch.Tensor):
        """Split stacked (sum(rows), ...) tensors per session: yields (*slices, ctx, kv, offset)."""
        pieces = [t.split(self.rows) for t in stacked]
        for i in range(len(self.rows)):
            yield (*(p[i] for p in pieces), self.ctx[i], self.kv[i], self.offsets[i])


def join_contexts(ctx: list, rows: list[int]):
    """Per-session contexts that are tuples of per-row tensors (rope cos/sin, each (rows[i], T,
    hd)) joined along the batch; None for any other context (ALiBi biases (nh, 1, S))."""
    if not all(isinstance(c, tuple) and all(t.shape[0] == r for t in c) for c, r in zip(ctx, rows)):
        return None
    return tuple(torch.cat(ts) for ts in zip(*ctx))
