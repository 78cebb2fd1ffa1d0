"""Batched Forward and Backward: parallel requests for the same blocks run as one pass.

When the compute loop pops a Forward (or a Backward) it takes the other queued requests of the
same kind it can run with it (same local blocks, published adapter, sequence length T, hidden
size and dtype; no deep prompts, no client LoRA, no fault injection) and runs the span once on
their rows stacked (sum B_i, T, C); a Backward runs one traced forward and one backward over
the stacked rows. Without KV caches the rows never see each other (the loss a Backward
differentiates, sum_i <g_i, y_i>, is a sum over rows), so each request gets the output or input
gradient it gets alone (up to BLAS blocking, ~1e-6 relative on CPU), its own sketches (its rows
of every block's trace), its own input hash and its own signed receipt. A request never waits
for company: only what is already queued joins (`Batchable.expect` = 0). A pass holds at most
PASS_TOKENS rows x tokens (a bigger request runs alone): batching pays for small requests
(1.67x aggregate for 16-token Forwards, 1.01x at 128, README), and the bound keeps what a paid
step that arrives mid-pass waits for to one ordinary pass, not the stack of every queued flood
request.

A bad request fails alone: each is checked before the pass; one that fails its checks gets its
error and the others run. The helpers take the BlockServicer (node/server.py) as `srv`.
"""

from __future__ import annotations

from typing import Callable

import torch

from node.runtime import Batchable

PASS_TOKENS = 256  # most rows x tokens in one batched pass


def request_key(srv, kind: str, request) -> tuple | None:
    """What a Forward / Backward must share with others to run in one pass; None = always alone."""
    if srv.cfg.max_batch_sessions <= 1 or srv.fault is not None or not request.HasField("hidden"):
        return None
    if request.HasField("prompts") or request.HasField("lora"):
        return None
    shape = tuple(request.hidden.shape)
    if len(shape) != 3:
        return None  # malformed: the plain path names the problem
    return kind, request.start, request.end, request.adapter, shape[1], shape[2], request.hidden.dtype


def _batchable(srv, kind: str, request, run_many: Callable[[list], list]) -> Batchable | None:
    key = request_key(srv, kind, request)
    if key is None:
        return None
    tokens = int(request.hidden.shape[0]) * int(request.hidden.shape[1])
    return Batchable(key, request, run_many, srv.cfg.max_batch_sessions, cost=tokens, budget=PASS_TOKENS)


def batchable_forward(srv, request) -> Batchable | None:
    return _batchable(srv, "forward", request, lambda requests: run_forwards(srv, requests))


def batchable_backward(srv, request) -> Batchable | None:
    return _batchable(srv, "backward", request, lambda requests: run_backwards(srv, requests))


def run_forwards(srv, requests: list) -> list:
    """One ForwardResponse (or that request's exception) per request, in order."""
    return _run(requests, srv._forward_inputs, lambda inputs: _stacked_forward(srv, inputs),
                srv._forward_response)


def run_backwards(srv, requests: list) -> list:
    """One BackwardResponse (or that request's exception) per request, in order."""
    return _run(requests, srv._backward_inputs, lambda inputs: _stacked_backward(srv, inputs),
                lambda request, inputs, grad, trace: srv._backward_response(request, inputs, grad, None, None, trace))


def _run(requests: list, check, stacked, respond) -> list:
    """check(request, batch=n) each request, run the good ones' rows as one stacked pass, then
    respond(request, inputs, its rows of the output, its trace); an exception is that request's."""
    outcomes: list = [None] * len(requests)
    ready = []  # (index, request, checked inputs)
    for i, request in enumerate(requests):
        try:
            ready.append((i, request, check(request, batch=len(requests))))
        except Exception as exc:  # noqa: BLE001 - this request's bad input
            outcomes[i] = exc
    if not ready:
        return outcomes
    try:
        outs, traces = stacked([inputs for _, _, inputs in ready])
    except Exception as exc:  # noqa: BLE001 - delivered to every request of the pass
        for i, _, _ in ready:
            outcomes[i] = exc
        return outcomes
    for (i, request, inputs), out, trace in zip(ready, outs, traces):
        try:
            outcomes[i] = respond(request, inputs, out, trace)
        except Exception as exc:  # noqa: BLE001
            outcomes[i] = exc
    return outcomes


def _split(out: torch.Tensor, trace: list[torch.Tensor], sizes: list[int]):
    """Per-request rows of a stacked output (sum B, T, C) and of every block's trace (sum B, T, K)."""
    per_block = [t.split(sizes) for t in trace]  # blocks x requests, each (B_i, T, K)
    return list(out.split(sizes)), [[rows[k] for rows in per_block] for k in range(len(sizes))]


def _stacked_forward(srv, inputs: list):
    first, last, named = inputs[0].first, inputs[0].last, inputs[0].named
    trace: list[torch.Tensor] = []
    y = srv._no_grad(torch.cat([inp.x for inp in inputs]), None, first, last, trace, None, named)  # (sum B, T, C)
    return _split(y, trace, [inp.x.shape[0] for inp in inputs])


def _stacked_backward(srv, inputs: list):
    first, last, named = inputs[0].first, inputs[0].last, inputs[0].named
    trace: list[torch.Tensor] = []
    x, g = torch.cat([inp.x for inp in inputs]), torch.cat([inp.g for inp in inputs])  # (sum B, T, C) each
    grad, _, _ = srv._input_grad(x, g, first, last, trace, None, None, named)  # dL/dx (sum B, T, C)
    return _split(grad, trace, [inp.x.shape[0] for inp in inputs])
