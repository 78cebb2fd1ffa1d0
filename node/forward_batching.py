"""Batched Forward: parallel Forward requests for the same blocks run as one pass.

When the compute loop pops a Forward it takes the other queued Forwards it can run with it
(same local blocks, published adapter, sequence length T, hidden size and dtype; no deep
prompts, no client LoRA, no fault injection) and runs the span once on their rows stacked
(sum B_i, T, C). Without KV caches the rows never see each other, so each request gets the
output it gets alone (up to BLAS blocking, ~1e-6 relative on CPU), its own sketches (its rows of
every block's trace), its own input hash and its own signed receipt. A Forward never waits for
company: only what is already queued joins (`Batchable.expect` = 0). A pass holds at most
PASS_TOKENS rows x tokens (a bigger request runs alone): batching pays for small requests
(1.67x aggregate at 16 tokens, 1.01x at 128, README), and the bound keeps what a paid step that
arrives mid-pass waits for to one ordinary pass, not the stack of every queued flood request.

A bad request fails alone: each is checked before the pass; one that fails its checks gets its
error and the others run. The helpers take the BlockServicer (node/server.py) as `srv`.
"""

from __future__ import annotations

import torch

from node.runtime import Batchable

PASS_TOKENS = 256  # most rows x tokens in one batched Forward pass


def forward_key(srv, request) -> tuple | None:
    """What a Forward must share with others to run in one pass; None = always alone."""
    if srv.cfg.max_batch_sessions <= 1 or srv.fault is not None or not request.HasField("hidden"):
        return None
    if request.HasField("prompts") or request.HasField("lora"):
        return None
    shape = tuple(request.hidden.shape)
    if len(shape) != 3:
        return None  # malformed: the plain path names the problem
    return "forward", request.start, request.end, request.adapter, shape[1], shape[2], request.hidden.dtype


def batchable(srv, request) -> Batchable | None:
    key = forward_key(srv, request)
    if key is None:
        return None
    tokens = int(request.hidden.shape[0]) * int(request.hidden.shape[1])
    return Batchable(key, request, lambda requests: run_forwards(srv, requests), srv.cfg.max_batch_sessions,
                     cost=tokens, budget=PASS_TOKENS)


def run_forwards(srv, requests: list) -> list:
    """One ForwardResponse (or that request's exception) per request, in order."""
    outcomes: list = [None] * len(requests)
    ready = []  # (index, request, checked inputs)
    for i, request in enumerate(requests):
        try:
            ready.append((i, request, srv._forward_inputs(request, batch=len(requests))))
        except Exception as exc:  # noqa: BLE001 - this request's bad input
            outcomes[i] = exc
    if not ready:
        return outcomes
    try:
        ys, traces = _stacked_pass(srv, [inputs for _, _, inputs in ready])
    except Exception as exc:  # noqa: BLE001 - delivered to every request of the pass
        for i, _, _ in ready:
            outcomes[i] = exc
        return outcomes
    for (i, request, inputs), y, trace in zip(ready, ys, traces):
        try:
            outcomes[i] = srv._forward_response(request, inputs, y, trace)
        except Exception as exc:  # noqa: BLE001
            outcomes[i] = exc
    return outcomes


def _stacked_pass(srv, inputs: list) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
    """Run the rows of every request at once; split outputs and per-block traces back."""
    first, last, named = inputs[0].first, inputs[0].last, inputs[0].named
    sizes = [inp.x.shape[0] for inp in inputs]
    trace: list[torch.Tensor] = []
    y = srv._no_grad(torch.cat([inp.x for inp in inputs]), None, first, last, trace, None, named)  # (sum B, T, C)
    per_block = [t.split(sizes) for t in trace]  # blocks x requests, each (B_i, T, K)
    return list(y.split(sizes)), [[rows[k] for rows in per_block] for k in range(len(inputs))]
