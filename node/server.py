"""The block server: serves blocks [start, end) of one model over gRPC.

Calls: Info, Forward (parallel forward, no cache), Backward (grad w.r.t. inputs), the Inference
stream (one session per stream, server-side KV cache, freed when the stream ends or idles out;
a step's input may come by push from the previous hop) and Push (another server's output for
one of our waiting steps, node/push.py). Every response carries a receipt signed by the
server's signer key. Anything wrong with a request is reported to that caller only (gRPC
status + message); the server goes on.

Debug hook (off by default): with env POLLEN_RPC_TRACE=FILE the server appends one JSON line per
request it served to FILE: the RPC, the session's open parameters and step, the hidden states'
shape and dtype, and a digest of their bytes. It is what the server itself can see of a
request, for tests that compare real traffic with spot-check replays and hunts.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import random
import signal
import statistics
import sys
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field

import grpc
import torch

from node import batching, push, request_batching
from node.billing import FREE, Billing
from node.config import ServerConfig
from node.errors import BadRequest, NodeError, SessionLimit, SessionProtocolError, SpanMismatch
from node.faults import Fault, tamper_for
from node.runtime import ComputeLoop, direct
from node.scheduler import Tier
from node.signing import ReceiptSigner
from pollen import judgment, wire
from pollen.errors import PollenError
from pollen.model import SpanCache, SpanModel, load_span
from pollen.model.span import span_grads
from pollen.model import lora as lora_mod
from pollen.proto import swarm_pb2 as pb
from pollen.proto import swarm_pb2_grpc as pb_grpc
from pollen.receipts import (KIND_BACKWARD, KIND_FORWARD, KIND_INFERENCE, ZERO_HASH, Receipt, ReceiptDomain,
                             chain_input_hash, fold_adapter, fold_grads, fold_lora, fold_lora_grads,
                             fold_prompts, hash_tensor)

log = logging.getLogger("pollen.node")


@dataclass
class Session:
    session_id: bytes
    first: int  # local block indexes [first, last) within the server's span
    last: int
    batch: int
    max_length: int
    compress: bool
    cache: SpanCache
    nbytes: int
    context: grpc.ServicerContext
    adapter: str = ""  # published LoRA named at open (CID), or ""
    lora: lora_mod.Lora | None = None  # its weights for [first, last)
    payer: str | None = None  # who pays for its steps (None = free tier)
    tier: Tier = Tier.FREE  # scheduling tier of its compute tasks
    step: int = 0
    input_hash: bytes = ZERO_HASH
    last_active: float = field(default_factory=time.monotonic)


def guarded(method):
    """Turn NodeError / WireError into a gRPC error status for this caller only."""

    def _abort(context, exc):
        if isinstance(exc, NodeError):
            context.abort(exc.code, str(exc))
        if isinstance(exc, wire.WireError):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        log.exception("internal error")
        context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}")

    if method.__name__ == "Inference":
        @functools.wraps(method)
        def stream(self, request_iterator, context):
            try:
                yield from method(self, request_iterator, context)
            except Exception as exc:  # noqa: BLE001 - reported to the caller, server continues
                if context.is_active():
                    _abort(context, exc)
        return stream

    @functools.wraps(method)
    def unary(self, request, context):
        try:
            return method(self, request, context)
        except Exception as exc:  # noqa: BLE001
            _abort(context, exc)
    return unary


@dataclass
class SpanInputs:
    """A Forward or Backward request after its checks: local blocks, session id, input and tuning tensors."""

    first: int
    last: int
    session_id: bytes
    x: torch.Tensor  # (B, T, C) on the span's device
    prompts: torch.Tensor | None
    lora: object | None  # client LoRA of this request
    named: object | None  # a published adapter the request names
    g: torch.Tensor | None = None  # Backward: dL/dy (B, T, C)


class BlockServicer(pb_grpc.BlockServerServicer):
    def __init__(self, config: ServerConfig, span: SpanModel, signer: ReceiptSigner, throughput: float):
        self.cfg, self.span, self.signer, self.throughput = config, span, signer, throughput
        self.compute = direct  # replaced by ComputeLoop.submit when serving (see run())
        self.billing: Billing = FREE  # pay-per-use policy; the daemon installs one over the escrow
        self.dtype = wire.WIRE_DTYPES[config.dtype]
        self.device = span.device  # decoded requests move here; outputs go back through the wire
        self.hidden = span.hidden_size
        self.sessions: dict[int, Session] = {}
        self.lock = threading.Lock()
        self.cache_bytes_budget = int(config.cache_memory_mb * (1 << 20))
        self.cache_bytes_used = 0
        self.term = config.term  # registry term receipts name; the daemon updates it
        self.fault = Fault.parse(config.fault_spec())  # FAULT INJECTION only (None = honest)
        self.fault_rng = random.Random()
        kv_heads, head_dim = span.family.kv_heads_dim(span.config)
        self.bytes_per_token = SpanCache.nbytes(len(span.blocks), 1, kv_heads, head_dim, 1, self.dtype)
        self.trace_path = os.environ.get("POLLEN_RPC_TRACE", "")  # debug hook, see the module doc
        widest = max((max(m.in_features, m.out_features) for m in span.blocks[0].modules()
                      if hasattr(m, "in_features")), default=self.hidden)
        self.lora_max_elements = len(span.blocks) * lora_mod.MAX_RANK * widest  # per LoRA tensor
        self.adapters: dict[str, lora_mod.Lora] = {}  # published LoRA by CID, weights of the whole span
        self.push_board = push.PushBoard()  # sessions that may receive pushes (node/push.py)
        self.pusher = push.Pusher(config.max_message_bytes)

    def _trace(self, rpc: str, hidden: pb.Tensor, x: torch.Tensor, **fields) -> None:
        """Debug hook: one JSON line per request served, what this server saw of it."""
        if not self.trace_path:
            return
        line = {"rpc": rpc, **fields, "shape": list(x.shape), "dtype": str(x.dtype).removeprefix("torch."),
                "digest": hashlib.sha256(hidden.SerializeToString(deterministic=True)).hexdigest()[:16]}
        with open(self.trace_path, "a") as f:
            f.write(json.dumps(line) + "\n")

    # ---- checks on everything that comes from outside -------------------------------------
    def _hidden(self, msg: pb.Tensor, batch: int | None = None) -> torch.Tensor:
        x = wire.decode(msg, max_elements=self.cfg.max_tokens_per_request * self.hidden)
        if x.dtype != self.dtype:
            raise BadRequest(f"hidden states are {wire.dtype_name(x.dtype)} but this server "
                             f"computes in {self.cfg.dtype}")
        if x.dim() != 3 or x.shape[0] < 1 or x.shape[1] < 1:
            raise BadRequest(f"hidden states must be (batch, seq, hidden), got shape {tuple(x.shape)}")
        if x.shape[2] != self.hidden:
            raise BadRequest(f"hidden size {x.shape[2]} does not match the model's {self.hidden}")
        if x.shape[0] > self.cfg.max_batch or (batch is not None and x.shape[0] != batch):
            raise BadRequest(f"batch {x.shape[0]} (session batch {batch}, max {self.cfg.max_batch})")
        if not wire.all_finite(x):
            raise BadRequest("hidden states contain NaN or inf")
        return x.to(self.device)

    def _prompts(self, request, x: torch.Tensor, n_blocks: int) -> torch.Tensor | None:
        """The request's deep prompts (n_blocks, B, P, C) checked against x (B, T, C), or None."""
        if not request.HasField("prompts"):
            return None
        B, T, C = x.shape
        try:  # bounded like hidden states (per block), the exact shape is checked below
            p = wire.decode(request.prompts, max_elements=n_blocks * self.cfg.max_tokens_per_request * C)
        except wire.WireError as exc:
            raise BadRequest(f"prompts: {exc}") from exc
        if p.dtype != self.dtype:
            raise BadRequest(f"prompts are {wire.dtype_name(p.dtype)} but this server computes in {self.cfg.dtype}")
        if p.dim() != 4 or (p.shape[0], p.shape[1], p.shape[3]) != (n_blocks, B, C) or not 1 <= p.shape[2] <= T:
            raise BadRequest(f"prompts must be (blocks={n_blocks}, batch={B}, pre_seq_len in [1, {T}], "
                             f"hidden={C}) for hidden states {tuple(x.shape)}, got shape {tuple(p.shape)}")
        if not wire.all_finite(p):
            raise BadRequest("prompts contain NaN or inf")
        return p.to(self.device)

    def _lora(self, request, n_blocks: int) -> lora_mod.Lora | None:
        """The request's client LoRA weights checked against n_blocks of this span's blocks, or None."""
        if not request.HasField("lora"):
            return None
        try:
            lora = lora_mod.from_proto(request.lora, self.lora_max_elements)
            lora_mod.check(lora, self.span.blocks[0], n_blocks, self.dtype)
        except lora_mod.LoraError as exc:
            raise BadRequest(f"lora: {exc}") from exc
        return lora.map(lambda t: t.to(self.device))

    def _named(self, cid: str, first: int, last: int) -> lora_mod.Lora | None:
        """The weights of local blocks [first, last) of a loaded published adapter, or None for ""."""
        if not cid:
            return None
        if cid not in self.adapters:
            raise BadRequest(f"adapter {cid} is not loaded on this server (loaded: {sorted(self.adapters) or 'none'})")
        return self.adapters[cid].slice(first, last)

    def _request_lora(self, request, first: int, last: int):
        """(client LoRA or None, published adapter weights or None) of a Forward / Backward."""
        if request.HasField("lora") and request.adapter:
            raise BadRequest("send either client `lora` weights or a published `adapter`, not both")
        return self._lora(request, last - first), self._named(request.adapter, first, last)

    def _local_span(self, start: int, end: int) -> tuple[int, int]:
        s, e = self.cfg.start, self.cfg.end
        if not s <= start < end <= e:
            raise SpanMismatch(start, end, (s, e))
        return start - s, end - s

    @staticmethod
    def _session_id(raw: bytes) -> bytes:
        if len(raw) != 32:
            raise BadRequest(f"session_id must be 32 bytes, got {len(raw)}")
        return bytes(raw)

    # ---- receipts ----------------------------------------------------------------------------
    def _receipt(self, kind: int, session_id, first, last, step, input_hash, output_hash: bytes,
                 blocks_root: bytes) -> pb.Receipt:
        r = Receipt(server=self.cfg.operator or self.signer.address, version_id=self.cfg.version_id,
                    first_block=first + self.cfg.start, last_block=last + self.cfg.start, term=self.term,
                    kind=kind, session_id=session_id, step=step, input_hash=input_hash,
                    output_hash=output_hash, blocks_root=blocks_root, issued_at=int(time.time()))
        return pb.Receipt(server=r.server, version_id=str(r.version_id), first_block=r.first_block,
                          last_block=r.last_block, term=r.term, kind=r.kind, session_id=r.session_id,
                          step=r.step, input_hash=r.input_hash, output_hash=r.output_hash,
                          blocks_root=r.blocks_root, issued_at=r.issued_at, signature=self.signer.sign(r))

    def _traced(self, first: int, trace: list[torch.Tensor]) -> tuple[pb.Tensor, bytes]:
        """(sketches message, blocksRoot) for the per-block sketches of one step."""
        sketches = torch.stack(trace)  # (blocks, B, T, K)
        return wire.encode(sketches), judgment.blocks_root(first + self.cfg.start, sketches)

    # ---- tensor work: everything below runs on the compute loop's thread (node/runtime.py) --
    def _tamper(self):
        """FAULT INJECTION (off unless configured): the cheat for this step, or None."""
        if self.fault is None or self.fault_rng.random() >= max(self.cfg.fault_rate, 0.0):
            return None
        return tamper_for(self.fault, self.cfg.start, len(self.span.blocks), self.fault_rng)

    def _no_grad(self, x, cache, first, last, trace=None, prompts=None, lora=None):
        with torch.no_grad():
            return self.span(x, cache, first, last, trace=trace, tamper=self._tamper(), prompts=prompts, lora=lora)

    def _input_grad(self, x, g, first, last, trace, prompts=None, lora=None, frozen=None):
        """(dL/dx (B, T, C), dL/dprompts (blocks, B, P, C) or None, dL/dLoRA or None)
        through one traced forward; `frozen`: a published adapter's weights (no gradient)."""
        tamper = self._tamper()
        if frozen is None:
            run = functools.partial(self.span, trace=trace, tamper=tamper)
        else:
            def run(*args, lora=None, **kw):
                return self.span(*args, trace=trace, tamper=tamper, lora=frozen, **kw)
        return span_grads(run, x, g, first, last, prompts, lora)

    # ---- RPCs ----------------------------------------------------------------------------------
    @guarded
    def Info(self, request, context):
        with self.lock:
            active = len(self.sessions)
            free = (self.cache_bytes_budget - self.cache_bytes_used) // self.bytes_per_token
        cfg, span = self.cfg, self.span
        return pb.InfoResponse(
            model=str(getattr(span.config, "_name_or_path", "") or cfg.model_path),
            family=span.family.name, num_blocks=span.family.num_blocks(span.config),
            start=cfg.start, end=cfg.end, dtype=cfg.dtype, quantization=cfg.quantization,
            throughput=self.throughput, free_cache_tokens=int(free), active_sessions=active,
            load=active / cfg.max_sessions, hidden_size=self.hidden,
            operator=cfg.operator or self.signer.address, signer=self.signer.address,
            version_id=str(cfg.version_id), max_length=cfg.max_length, chain_id=cfg.chain_id,
            court=cfg.court, max_message_bytes=cfg.max_message_bytes, adapters=sorted(self.adapters),
            price_wei=str(self.billing.terms.price), credit_limit_wei=str(self.billing.terms.credit_limit),
            free_tier=self.billing.terms.free_tier, escrow=self.billing.domain.escrow if self.billing.domain else "",
            push=True)

    @guarded
    def Forward(self, request, context):
        return self._billed(request, lambda: self._forward(request), request_batching.batchable_forward(self, request))

    @guarded
    def Backward(self, request, context):
        return self._billed(request, lambda: self._backward(request), request_batching.batchable_backward(self, request))

    def _billed(self, request, work, batch=None):
        """Admit by payment (tier or PaymentRequired), compute (maybe batched), then charge the payer."""
        payment = request.payment if request.HasField("payment") else None
        payer, tier = self.billing.admit(payment, request.session_id)
        response = self.compute(work, tier, batch)
        self.billing.charge(payer, request.end - request.start, _tokens(request.hidden))
        return response

    def _forward(self, request) -> pb.ForwardResponse:
        inputs = self._forward_inputs(request)
        trace: list[torch.Tensor] = []
        y = self._no_grad(inputs.x, None, inputs.first, inputs.last, trace, inputs.prompts, inputs.lora or inputs.named)
        return self._forward_response(request, inputs, y, trace)

    def _forward_inputs(self, request, batch: int = 1) -> "SpanInputs":
        """A Forward's checked inputs (BadRequest naming what is wrong); `batch` for the trace."""
        first, last = self._local_span(request.start, request.end)
        session_id = self._session_id(request.session_id)
        x = self._hidden(request.hidden)
        prompts = self._prompts(request, x, last - first)
        lora, named = self._request_lora(request, first, last)
        self._trace("Forward", request.hidden, x, start=request.start, end=request.end, batch=batch)
        return SpanInputs(first, last, session_id, x, prompts, lora, named)

    def _forward_response(self, request, inputs: "SpanInputs", y: torch.Tensor, trace) -> pb.ForwardResponse:
        """Encode y (B, T, C), sketch its blocks' trace, sign the receipt over exactly these bytes."""
        msg = wire.encode(y, request.compress_output)
        sketches, root = self._traced(inputs.first, trace)
        input_hash = fold_prompts(chain_input_hash(ZERO_HASH, wire.message_hash(request.hidden)), inputs.prompts)
        input_hash = fold_adapter(fold_lora(input_hash, inputs.lora), request.adapter)
        receipt = self._receipt(KIND_FORWARD, inputs.session_id, inputs.first, inputs.last, 0, input_hash,
                                wire.message_hash(msg), root)
        return pb.ForwardResponse(hidden=msg, receipt=receipt, sketches=sketches)

    def _backward(self, request) -> pb.BackwardResponse:
        inputs = self._backward_inputs(request)
        trace: list[torch.Tensor] = []
        grads = self._input_grad(inputs.x, inputs.g, inputs.first, inputs.last, trace, inputs.prompts, inputs.lora,
                                 inputs.named)
        return self._backward_response(request, inputs, *grads, trace)

    def _backward_inputs(self, request, batch: int = 1) -> "SpanInputs":
        """A Backward's checked inputs (BadRequest naming what is wrong); `batch` for the trace."""
        first, last = self._local_span(request.start, request.end)
        session_id = self._session_id(request.session_id)
        x = self._hidden(request.hidden)
        g = self._hidden(request.grad_output, batch=x.shape[0])
        if g.shape != x.shape:
            raise BadRequest(f"grad_output shape {tuple(g.shape)} != hidden shape {tuple(x.shape)}")
        prompts = self._prompts(request, x, last - first)
        lora, named = self._request_lora(request, first, last)
        self._trace("Backward", request.hidden, x, start=request.start, end=request.end, batch=batch)
        return SpanInputs(first, last, session_id, x, prompts, lora, named, g)

    def _backward_response(self, request, inputs: "SpanInputs", grad: torch.Tensor, grad_prompts, grad_lora,
                           trace) -> pb.BackwardResponse:
        """Encode dL/dx (and the prompts' / LoRA's gradients), sketch the trace, sign the receipt."""
        input_hash = chain_input_hash(chain_input_hash(ZERO_HASH, hash_tensor(inputs.x)), hash_tensor(inputs.g))
        input_hash = fold_adapter(fold_lora(fold_prompts(input_hash, inputs.prompts), inputs.lora), request.adapter)
        msg = wire.encode(grad)
        sketches, root = self._traced(inputs.first, trace)
        gp_msg = None if grad_prompts is None else wire.encode(grad_prompts)
        gl_msg = None if grad_lora is None else lora_mod.to_proto(grad_lora)
        output_hash = fold_lora_grads(fold_grads(wire.message_hash(msg), grad_prompts), grad_lora)
        receipt = self._receipt(KIND_BACKWARD, inputs.session_id, inputs.first, inputs.last, 0, input_hash,
                                output_hash, root)
        return pb.BackwardResponse(grad_input=msg, receipt=receipt, sketches=sketches, grad_prompts=gp_msg,
                                   grad_lora=gl_msg)

    @guarded
    def Inference(self, request_iterator, context):
        session, inbox = None, push.StreamInbox(request_iterator)
        try:
            for request in inbox:
                if session is None:
                    payer, tier = self._payer(request, None)
                    session = self.compute(lambda: self._open(request, context), tier)
                    session.payer, session.tier = payer, tier
                    self._pushable(session, inbox)
                elif request.HasField("open"):
                    raise SessionProtocolError("`open` sent twice")
                else:
                    self._payer(request, session)
                if request.HasField("push"):
                    push.check_target(request.push)
                by_push = self._pull(session, request, inbox) if request.HasField("pushed") else False
                if by_push is None:  # nothing ran: the client sends the input itself
                    yield pb.InferenceResponse(push_error=f"no input for step {request.step} within "
                                                          f"{push.wait_s(request.pushed.wait_ms):g} s")
                    continue
                response = self._run_step(session, request)
                inbox.ran(session.step)
                if request.HasField("push"):  # the next hop gets the very message the client gets
                    self.pusher.push(request.push, response.hidden)
                response.pushed = by_push
                self.billing.charge(session.payer, session.last - session.first, _tokens(request.hidden))
                yield response
        finally:
            inbox.close()
            if session is not None:
                self.push_board.unregister(session.session_id, inbox)
                self._close(session)

    def _pushable(self, session: Session, inbox: push.StreamInbox) -> None:
        """Let the Push rpc reach this session; pushed tensors get _hidden's checks (on the loop)."""
        inbox.check = lambda msg: self.compute(lambda: self._hidden(msg, batch=session.batch), session.tier)
        if not self.push_board.register(session.session_id, inbox):
            log.warning("session id %s is used by two streams: no pushes to it", session.session_id.hex()[:16])

    def _pull(self, session: Session, request, inbox: push.StreamInbox) -> bool | None:
        """Fill a `pushed` step's request.hidden from the push (True) or the client's fallback
        copy (False); None when neither came in time (nothing runs)."""
        if request.HasField("hidden"):
            raise BadRequest("a step carries either `hidden` or `pushed`, not both")
        if len(request.pushed.token_hash) != 32:
            raise BadRequest("pushed.token_hash must be 32 bytes (sha256 of the push token)")
        if request.step != session.step:
            raise SessionProtocolError(f"step {request.step} but the session is at step {session.step}")
        if not self.push_board.holds(session.session_id, inbox):
            return None
        got = inbox.await_input(request.step, bytes(request.pushed.token_hash), push.wait_s(request.pushed.wait_ms))
        if got is None:
            return None
        hidden, by_push = got
        request.hidden.CopyFrom(hidden)
        request.ClearField("pushed")
        return by_push

    @guarded
    def Push(self, request, context):
        """Another server's output for one of our sessions' pending steps (node/push.py)."""
        return self.push_board.deliver(request)

    def _payer(self, request, session: Session | None):
        """The stream's payer (fixed by its first request) and tier; later requests may bring
        newer vouchers from the same payer, and a payer behind its credit limit is refused."""
        payment = request.payment if request.HasField("payment") else None
        if session is None:
            return self.billing.admit(payment, request.open.session_id)
        if session.payer is None:
            return None, session.tier  # a free-tier stream stays free
        if payment is not None and payment.client and payment.client.lower() != session.payer.lower():
            raise BadRequest(f"payment from {payment.client} on a session paid by {session.payer}")
        if payment is not None:
            return self.billing.admit(payment, session.session_id)
        self.billing.require_current(session.payer)
        return session.payer, session.tier

    # ---- sessions --------------------------------------------------------------------------------
    def _open(self, request, context) -> Session:
        if not request.HasField("open"):
            raise SessionProtocolError("the first message must carry `open` (unknown session)")
        o = request.open
        first, last = self._local_span(o.start, o.end)
        session_id = self._session_id(o.session_id)
        named = self._named(o.adapter, first, last)
        if not 1 <= o.max_length <= self.cfg.max_length:
            raise SessionLimit(f"max_length {o.max_length} not in [1, {self.cfg.max_length}]")
        if not 1 <= o.batch_size <= self.cfg.max_batch:
            raise BadRequest(f"batch_size {o.batch_size} not in [1, {self.cfg.max_batch}]")
        nbytes = self.bytes_per_token * o.batch_size * o.max_length
        with self.lock:
            if len(self.sessions) >= self.cfg.max_sessions:
                raise SessionLimit(f"server already holds {len(self.sessions)} sessions")
            if self.cache_bytes_used + nbytes > self.cache_bytes_budget:
                free = (self.cache_bytes_budget - self.cache_bytes_used) // self.bytes_per_token
                raise SessionLimit(f"KV cache for {o.batch_size}x{o.max_length} tokens does not fit "
                                   f"({free} tokens free)")
            self.cache_bytes_used += nbytes
        cache = self.span.new_cache(o.batch_size, o.max_length)
        session = Session(session_id, first, last, o.batch_size, o.max_length, o.compress_output,
                          cache, nbytes, context, o.adapter, named)
        with self.lock:
            self.sessions[id(session)] = session
        return session

    def _close(self, session: Session) -> None:
        with self.lock:
            if self.sessions.pop(id(session), None) is not None:
                self.cache_bytes_used -= session.nbytes

    def _run_step(self, session: Session, request) -> pb.InferenceResponse:
        """One inference step of `session` on the compute loop, at the session's tier; batched
        with other sessions' queued compatible steps (node/batching.py)."""
        return self.compute(lambda: self._step(session, request), session.tier,
                            batch=batching.batchable(self, session, request))

    def _step(self, session: Session, request) -> pb.InferenceResponse:
        """One session's step alone (what each step of a batch equals)."""
        x, prompts = batching.prepare(self, session, request)
        trace: list[torch.Tensor] = []
        y = self._no_grad(x, session.cache, session.first, session.last, trace, prompts, session.lora)
        return batching.finish(self, session, request, y, trace, prompts)

    def expire_idle(self) -> int:
        """Cancel sessions idle longer than the timeout; returns how many."""
        now = time.monotonic()
        with self.lock:
            idle = [s for s in self.sessions.values() if now - s.last_active > self.cfg.session_timeout_s]
        for s in idle:
            s.context.cancel()
            self._close(s)
        return len(idle)


def _tokens(hidden: pb.Tensor) -> int:
    """batch x sequence of a (B, T, C) tensor message (what a request is billed for)."""
    return int(hidden.shape[0] * hidden.shape[1]) if len(hidden.shape) == 3 else 0


def _open_fields(o: pb.SessionOpen) -> dict:
    return {"start": o.start, "end": o.end, "max_length": o.max_length, "batch_size": o.batch_size,
            "compress_output": o.compress_output}


def measure_throughput(span: SpanModel, dtype: torch.dtype, steps: int = 5) -> float:
    """Decode tokens/s through the whole span (batch 1, short cache), median of a few steps."""
    cache = span.new_cache(1, steps)
    x = torch.randn(1, 1, span.hidden_size, generator=torch.Generator().manual_seed(0)).to(span.device, dtype)
    times = []
    with torch.no_grad():
        for _ in range(steps):
            t0 = time.perf_counter()
            span(x, cache)
            times.append(time.perf_counter() - t0)
    return 1.0 / statistics.median(times[1:])


def build_server(config: ServerConfig):
    """Load the span and start gRPC; returns (grpc server, servicer, bound port)."""
    config.validate()
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    span = load_span(config.model_path, config.start, config.end, config.dtype, config.device)
    if config.quantization != "none":
        from pollen.model.quant import quantize_span

        span = quantize_span(span, config.quantization)
    fault = Fault.parse(config.fault_spec())
    if fault is not None and fault.kind == "quant":  # FAULT INJECTION: cheaper than declared
        from pollen.model.quant import quantize_span

        span = quantize_span(span, fault.mode)
    signer = ReceiptSigner(config.signer_key or None, ReceiptDomain(config.chain_id, config.court))
    servicer = BlockServicer(config, span, signer, measure_throughput(span, servicer_dtype(config)))
    servicer.adapters = load_adapters(config, span)
    options = [("grpc.max_receive_message_length", config.max_message_bytes),
               ("grpc.max_send_message_length", config.max_message_bytes),
               ("grpc.so_reuseport", 0)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=config.workers), options=options)
    pb_grpc.add_BlockServerServicer_to_server(servicer, server)
    port = server.add_insecure_port(f"{config.host}:{config.port}")
    if port == 0:
        raise NodeError(f"cannot listen on {config.host}:{config.port}")
    server.start()
    return server, servicer, port


def load_adapters(config: ServerConfig, span: SpanModel) -> dict[str, lora_mod.Lora]:
    """The published LoRA adapters of config.adapters for the served blocks, fetched and verified
    by CID, checked against the blocks; a bad one stops the start with a clear error."""
    if not config.adapters:
        return {}
    from pollen.adapters import load_lora
    from pollen.store import open_store

    store, dtype, out = open_store(config.adapter_store or None), servicer_dtype(config), {}
    for cid in config.adapters:
        t0 = time.perf_counter()
        try:
            lora = load_lora(store, cid, config.start, config.end, config.base_manifest or None)
            lora = lora.map(lambda t: t.to(device=config.device, dtype=dtype))
            lora_mod.check(lora, span.blocks[0], len(span.blocks), dtype)
        except PollenError as exc:
            raise NodeError(f"cannot load adapter {cid}: {exc}") from exc
        out[cid] = lora
        log.info("adapter %s loaded in %.3f s", cid, time.perf_counter() - t0)
    return out


def servicer_dtype(config: ServerConfig) -> torch.dtype:
    return wire.WIRE_DTYPES[config.dtype]


def run(config: ServerConfig) -> None:
    """Serve until SIGTERM / SIGINT; prints one JSON ready line on stdout."""
    server, servicer, port = build_server(config)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    loop = ComputeLoop()
    servicer.compute = loop.submit
    print(json.dumps({"event": "ready", "host": config.host, "port": port,
                      "blocks": [config.start, config.end], "signer": servicer.signer.address,
                      "throughput": round(servicer.throughput, 2)}), flush=True)
    loop.run(stop, servicer.expire_idle)  # tensor compute on the main thread until SIGTERM
    servicer.compute = direct
    server.stop(grace=1.0).wait()
    sys.stdout.flush()
