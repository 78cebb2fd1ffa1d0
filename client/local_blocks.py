"""Blocks that run in the client process, for privacy: the first k and the last k transformer
blocks of the model are loaded from the same checkpoint (or the version's shards) and run here,
so the swarm only serves the middle [k_first, num_blocks - k_last).

With k_first >= 1 no server is ever sent a token's embedding (servers see hidden states after
block k_first - 1); with k_last >= 1 no server returns the final hidden state the LM head reads.

    local = LocalBlocks.load(folder, num_blocks, 1, 1, "float32")
    h = local.last(remote(local.first(embeddings)))          # forward, autograd through both
    session = LocalSession(local, InferenceSession(swarm, verifier, T, start=1, end=n - 1), T)
"""

from __future__ import annotations

import torch
from torch import nn

from client.errors import SessionClosed, SessionTooLong


def local_split(local_blocks, num_blocks: int) -> tuple[int, int]:
    """(k_first, k_last) from None, an int k (= (k, k)) or a pair; ValueError unless at least one
    block is left for the swarm."""
    if local_blocks is None:
        return 0, 0
    pair = (local_blocks, local_blocks) if isinstance(local_blocks, int) else tuple(local_blocks)
    if len(pair) != 2 or not all(isinstance(k, int) and k >= 0 for k in pair):
        raise ValueError(f"local_blocks={local_blocks!r}: expected k or (k_first, k_last), non-negative ints")
    if pair[0] + pair[1] >= num_blocks:
        raise ValueError(f"local_blocks={local_blocks!r} keeps {pair[0] + pair[1]} of the model's {num_blocks} "
                         f"blocks on the client: at least one must be left for the swarm")
    return pair


class LocalBlocks(nn.Module):
    """SpanModels for blocks [0, k_first) and [num_blocks - k_last, num_blocks) (either may be None)."""

    def __init__(self, head_span, tail_span, num_blocks: int):
        super().__init__()
        self.head_span, self.tail_span, self.num_blocks = head_span, tail_span, num_blocks
        self.k_first = 0 if head_span is None else len(head_span.blocks)
        self.k_last = 0 if tail_span is None else len(tail_span.blocks)

    @classmethod
    def load(cls, folder, num_blocks: int, k_first: int, k_last: int, dtype: str) -> "LocalBlocks":
        from pollen.model.loading import load_span

        head = load_span(folder, 0, k_first, dtype) if k_first else None
        tail = load_span(folder, num_blocks - k_last, num_blocks, dtype) if k_last else None
        return cls(head, tail, num_blocks)

    @property
    def remote_span(self) -> tuple[int, int]:
        """Blocks [start, end) the swarm serves."""
        return self.k_first, self.num_blocks - self.k_last

    def first(self, h: torch.Tensor, cache=None) -> torch.Tensor:
        """(B, T, C) embeddings -> (B, T, C) after the local first blocks (identity if none)."""
        return _run(self.head_span, h, cache)

    def last(self, h: torch.Tensor, cache=None) -> torch.Tensor:
        """(B, T, C) after the remote middle -> (B, T, C) after the local last blocks."""
        return _run(self.tail_span, h, cache)

    def new_caches(self, batch: int, max_length: int) -> tuple:
        return tuple(None if s is None else s.new_cache(batch, max_length) for s in (self.head_span, self.tail_span))


def _run(span, h: torch.Tensor, cache) -> torch.Tensor:
    if span is None:
        return h
    return span(h.to(span.device, span.compute_dtype), cache).to(h.device, h.dtype)


class LocalSession:
    """An inference session through local first blocks, a remote session over the middle and local
    last blocks, each with its own KV cache; other attributes (receipts, route, failovers,
    position, ...) are the remote session's."""

    def __init__(self, local: LocalBlocks, remote, max_length: int, batch_size: int = 1):
        self.local, self.remote, self.max_length = local, remote, max_length
        self.head_cache, self.tail_cache = local.new_caches(batch_size, max_length)
        self.pending_ids = None  # sampled but not yet sent (generate)
        self.output_ids = None  # (B, n) tokens of earlier generate() calls
        self.on_context = None  # fn(session | None) on entering / leaving a `with` block

    def step(self, hidden: torch.Tensor, prompts: torch.Tensor | None = None) -> torch.Tensor:
        """hidden (B, T, C) embeddings -> (B, T, C) after all blocks."""
        if prompts is not None:
            raise ValueError("deep prompts cannot be combined with local blocks")
        if self.remote._closed:
            raise SessionClosed()
        if self.remote.position + hidden.shape[1] > self.max_length:
            raise SessionTooLong(self.remote.position, hidden.shape[1], self.max_length)
        with torch.no_grad():
            h = self.local.first(hidden, self.head_cache)
            h = self.remote.step(h)
            return self.local.last(h, self.tail_cache)

    def close(self) -> None:
        self.remote.close()

    def __enter__(self):
        if self.on_context is not None:
            self.on_context(self)
        return self

    def __exit__(self, *exc):
        if self.on_context is not None:
            self.on_context(None)
        self.close()

    def __getattr__(self, name):  # only called for attributes not found on the wrapper
        remote = self.__dict__.get("remote")
        if remote is None:
            raise AttributeError(name)
        return getattr(remote, name)
