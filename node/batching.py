"""Batched sessions: concurrent inference steps of compatible sessions run as one decode step.

Continuous batching on the compute loop (node/runtime.py): every inference step is submitted with
a Batchable; when the loop pops one, it takes the other queued steps with the same key and
runs them together. A lone session never waits for company; a step briefly waits (at most
--max-batch-wait-ms) only while other sessions on the same blocks are active, so that
concurrent sessions stay in step instead of alternating.

Compatible (step_key): same local blocks [first, last), same published adapter (or none), same
number of new tokens T and hidden dtype, no deep prompts, and no fault injection configured.
Sessions may differ in cached length (ragged) and batch size: their rows are stacked (sum B_i,
T, C), the projections and MLPs run once on the stack, attention runs per session over its own
KV cache (SpanModel.forward_many, pollen/model/ragged.py).

Each session keeps everything it has alone: its own checks (a bad request fails only that
session, before any compute), its own input-hash chain, sketches of its own rows, its own
signed receipt. The helpers take the BlockServicer (node/server.py) as `srv`.
"""

from __future__ import annotations

import time

import torch

from node.errors import BadRequest, SessionLimit, SessionProtocolError
from node.runtime import Batchable
from pollen import wire
from pollen.proto import swarm_pb2 as pb
from pollen.receipts import KIND_INFERENCE, chain_input_hash, fold_adapter, fold_prompts

ACTIVE_S = 1.0  # a session that stepped this recently is expected to step again soon


def step_key(srv, session, request) -> tuple | None:
    """What a step must share with others to run in one batch; None = never batched."""
    if srv.cfg.max_batch_sessions <= 1 or srv.fault is not None or request.HasField("prompts") or not request.HasField("hidden"):
        return None
    shape = tuple(request.hidden.shape)
    if len(shape) != 3:
        return None  # malformed: let the plain path name the problem
    return session.first, session.last, session.adapter, shape[1], request.hidden.dtype


def batchable(srv, session, request) -> Batchable | None:
    """The compute loop's batching descriptor for one step, or None when it must run alone."""
    key = step_key(srv, session, request)
    if key is None:
        return None
    return Batchable(key, (session, request), lambda jobs: run_steps(srv, jobs), srv.cfg.max_batch_sessions,
                     expect=_active_peers(srv, session), wait_s=srv.cfg.max_batch_wait_ms / 1000)


def _active_peers(srv, session) -> int:
    """Other open sessions on the same blocks and adapter that stepped within ACTIVE_S: the
    company a step may briefly wait for (a lone session has none, so it never waits)."""
    now, where = time.monotonic(), (session.first, session.last, session.adapter)
    with srv.lock:
        return sum(1 for s in srv.sessions.values() if s is not session and now - s.last_active < ACTIVE_S
                   and (s.first, s.last, s.adapter) == where)


def prepare(srv, session, request, batch: int = 1):
    """Check one step against its session; (hidden states (B, T, C), deep prompts or None).
    `batch`: how many steps were taken together (for the debug trace only)."""
    session.last_active = time.monotonic()
    if not request.HasField("hidden"):
        raise BadRequest("step without hidden states")
    if request.step != session.step:
        raise SessionProtocolError(f"step {request.step} but the session is at step {session.step}")
    x = srv._hidden(request.hidden, batch=session.batch)
    prompts = srv._prompts(request, x, session.last - session.first)
    if prompts is not None and session.cache.length:
        raise BadRequest(f"prompts on a step at position {session.cache.length}: deep prompts go with the "
                         f"step that starts at position 0")
    if session.cache.length + x.shape[1] > session.max_length:
        raise SessionLimit(f"{session.cache.length} + {x.shape[1]} tokens exceed the session's "
                           f"max_length {session.max_length}")
    from node.server import _open_fields

    srv._trace("Inference", request.hidden, x, session=session.session_id.hex()[:16], step=session.step,
               open=_open_fields(request.open) if request.HasField("open") else None, batch=batch)
    return x, prompts


def finish(srv, session, request, y: torch.Tensor, trace: list[torch.Tensor], prompts) -> pb.InferenceResponse:
    """Encode one session's output y (B, T, C), advance its hash chain, sign its receipt."""
    msg = wire.encode(y, session.compress)
    sketches, root = srv._traced(session.first, trace)
    session.input_hash = fold_prompts(chain_input_hash(session.input_hash, wire.message_hash(request.hidden)),
                                      prompts)
    session.input_hash = fold_adapter(session.input_hash, session.adapter if session.step == 0 else None)
    receipt = srv._receipt(KIND_INFERENCE, session.session_id, session.first, session.last, session.step,
                           session.input_hash, wire.message_hash(msg), root)
    session.step += 1
    session.last_active = time.monotonic()
    return pb.InferenceResponse(hidden=msg, receipt=receipt, sketches=sketches)


def run_steps(srv, jobs: list) -> list:
    """One step for each (session, request) of a batch (one step_key): outcomes in order, each an
    InferenceResponse or the exception for that session alone."""
    outcomes: list = [None] * len(jobs)
    ready = []  # (index, session, request, x, prompts)
    for i, (session, request) in enumerate(jobs):
        try:
            ready.append((i, session, request, *prepare(srv, session, request, len(jobs))))
        except Exception as exc:  # noqa: BLE001 - this session's bad request
            outcomes[i] = exc
    if not ready:
        return outcomes
    traces: list[list[torch.Tensor]] = [[] for _ in ready]
    try:
        ys = _compute(srv, ready, traces)
    except Exception as exc:  # noqa: BLE001 - delivered to every session of the batch
        for i, *_ in ready:
            outcomes[i] = exc
        return outcomes
    for (i, session, request, _, prompts), y, trace in zip(ready, ys, traces):
        try:
            outcomes[i] = finish(srv, session, request, y, trace, prompts)
        except Exception as exc:  # noqa: BLE001
            outcomes[i] = exc
    return outcomes


def _compute(srv, ready, traces) -> list[torch.Tensor]:
    """Outputs of the checked steps: the plain path for one, one stacked pass for several."""
    _, session, _, x, prompts = ready[0]
    if len(ready) == 1:
        return [srv._no_grad(x, session.cache, session.first, session.last, traces[0], prompts, session.lora)]
    with torch.no_grad():
        return srv.span.forward_many([r[3] for r in ready], [r[1].cache for r in ready], session.first,
                                     session.last, traces, lora=session.lora)
