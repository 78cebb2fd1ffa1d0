"""Parallel forward / backward through the swarm (no KV cache), with autograd and retries.

Deep prompts (Petals' deep prompt tuning): `prompts` (end - start, B, P, C) for blocks
[start, end); before block i, prompts[i - start] is added to hidden[:, :P] (the P prompt tokens
the caller prepended). Each hop gets the slice for its blocks; Backward returns their gradient.
RemoteDeepBlocks is the autograd Function that makes torch.autograd reach the prompts.

Client LoRA (pollen.model.lora.Lora for blocks [start, end)): each Forward / Backward carries
the hop's slice of the weights (no server-side state), Backward returns their gradient;
RemoteTunedBlocks reaches prompts and LoRA tensors with autograd.
"""

from __future__ import annotations

import os

import torch

from client.errors import ServerFailure
from client.swarm import RemoteSwarm
from client.verify import Expected, ReceiptRecord, ReceiptVerifier, check_output, decode_sketches
from pollen import wire
from pollen.proto import swarm_pb2 as pb
from pollen.model import lora as lora_mod
from pollen.receipts import (KIND_BACKWARD, KIND_FORWARD, ZERO_HASH, chain_input_hash, fold_adapter, fold_grads,
                             fold_lora, fold_lora_grads, fold_prompts, hash_tensor)
from client.routing import Hop


class RemoteRunner:
    """Runs spans with Forward / Backward RPCs, verifying receipts, re-routing on failure."""

    def __init__(self, swarm: RemoteSwarm, verifier: ReceiptVerifier, compress: bool = False,
                 max_failures: int = 5, timeout: float = 120.0):
        self.swarm, self.verifier, self.compress = swarm, verifier, compress
        self.max_failures, self.timeout = max_failures, timeout
        self.receipts: list[ReceiptRecord] = []
        self.adapter = ""  # CID of a published LoRA the servers apply to every request ("" = none)
        self.payer = None  # client.payer.Payer: pays each verified request (None: free tier)

    def with_failover(self, fn, start: int, end: int):
        """The one retry helper: fn(hops) on a fresh route, excluding failed servers, with backoff."""
        failures = 0
        while True:
            try:
                return fn(self.swarm.route(start, end))
            except ServerFailure as exc:
                failures += 1
                self.swarm.fail(exc.address)
                if failures > self.max_failures:
                    raise

    def _expect(self, hop: Hop, session_id: bytes, input_hash: bytes, kind: int) -> Expected:
        view = self.swarm.views[hop.address]
        return Expected(view.signer, view.operator, session_id, 0, hop.start, hop.end, input_hash, kind)

    def _verified(self, hop: Hop, resp, expected: Expected, out: torch.Tensor, exact: bool,
                  output_hash: bytes | None = None):
        """Check the receipt and the sketches of a Forward/Backward response; returns them.
        output_hash: what outputHash must be when it is not hash_tensor(out) (prompted Backward)."""
        sketches = decode_sketches(hop.address, resp.sketches, hop.end - hop.start, tuple(out.shape))
        record = self.verifier.check(hop.address, resp.receipt, expected, output_hash or out, sketches)
        self.receipts.append(record)
        check_output(hop.address, record, out, sketches, exact=exact)
        if self.payer is not None:  # paid only once verified and checked
            self.payer.paid_step(record, record.receipt.digest(self.verifier.domain), hop.end - hop.start,
                                 out.shape[0] * out.shape[1])
        return sketches

    def _pay(self, req, hop: Hop, session_id: bytes) -> None:
        if self.payer is not None:
            req.payment.CopyFrom(self.payer.payment(session_id, self.swarm.views[hop.address].operator))

    def forward_hop(self, hop: Hop, x: torch.Tensor, prompts: torch.Tensor | None = None,
                    lora: lora_mod.Lora | None = None) -> torch.Tensor:
        """x (B, T, C) through the hop's blocks; prompts (hop blocks, B, P, C), LoRA for the hop's blocks, or None."""
        dtype = wire.WIRE_DTYPES[self.swarm.views[hop.address].info.dtype]
        x = x.to(dtype)
        prompts, lora = _on_wire(prompts, dtype), _on_wire(lora, dtype)
        sid = os.urandom(32)
        req = pb.ForwardRequest(session_id=sid, start=hop.start, end=hop.end,
                                hidden=wire.encode(x, self.compress), compress_output=self.compress)
        _attach(req, prompts, lora, self.adapter)
        self._pay(req, hop, sid)
        resp = self.swarm.connection(hop.address).call("Forward", req, self.timeout)
        y = _decode(hop.address, resp.hidden, x.shape)
        input_hash = chain_input_hash(ZERO_HASH, hash_tensor(wire.roundtrip(x, self.compress)))
        input_hash = fold_adapter(fold_lora(fold_prompts(input_hash, prompts), lora), self.adapter)
        self._verified(hop, resp, self._expect(hop, sid, input_hash, KIND_FORWARD), y, not self.compress)
        return y

    def backward_hop(self, hop: Hop, x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """dL/dx (B, T, C) of one hop without prompts."""
        return self.backward_hop_tuned(hop, x, grad)[0]

    def backward_hop_tuned(self, hop: Hop, x: torch.Tensor, grad: torch.Tensor, prompts: torch.Tensor | None = None,
                           lora: lora_mod.Lora | None = None):
        """(dL/dx (B, T, C), dL/dprompts (hop blocks, B, P, C) or None, dL/dLoRA or None) of one hop."""
        dtype = wire.WIRE_DTYPES[self.swarm.views[hop.address].info.dtype]
        x, grad = x.to(dtype), grad.to(dtype)
        prompts, lora = _on_wire(prompts, dtype), _on_wire(lora, dtype)
        sid = os.urandom(32)
        req = pb.BackwardRequest(session_id=sid, start=hop.start, end=hop.end,
                                 hidden=wire.encode(x), grad_output=wire.encode(grad))
        _attach(req, prompts, lora, self.adapter)
        self._pay(req, hop, sid)
        resp = self.swarm.connection(hop.address).call("Backward", req, self.timeout)
        g = _decode(hop.address, resp.grad_input, x.shape)
        gp = None
        if prompts is not None:
            if not resp.HasField("grad_prompts"):
                raise ServerFailure(hop.address, "returned no gradient for the deep prompts it was sent")
            gp = _decode(hop.address, resp.grad_prompts, prompts.shape)
        gl = None if lora is None else _decode_lora_grads(hop.address, resp, lora)
        input_hash = chain_input_hash(chain_input_hash(ZERO_HASH, hash_tensor(x)), hash_tensor(grad))
        input_hash = fold_adapter(fold_lora(fold_prompts(input_hash, prompts), lora), self.adapter)
        expected = self._expect(hop, sid, input_hash, KIND_BACKWARD)
        output_hash = fold_lora_grads(fold_grads(hash_tensor(g), gp), gl)
        self._verified(hop, resp, expected, g, exact=False, output_hash=output_hash)
        if gp is not None and not wire.all_finite(gp):
            raise ServerFailure(hop.address, "returned non-finite prompt gradients")
        return g, gp, gl

    def forward(self, x: torch.Tensor, start: int = 0, end: int | None = None,
                prompts: torch.Tensor | None = None, lora: lora_mod.Lora | None = None):
        """(output, [(start, end, input)] per hop actually used); prompts (end - start, B, P, C);
        lora: LoRA weights for blocks [start, end)."""
        end = self.swarm.num_blocks if end is None else end
        check_prompts(prompts, x, end - start)
        check_lora_blocks(lora, end - start)

        def run(hops):
            inputs, h = [], x
            for hop in hops:
                inputs.append((hop.start, hop.end, h))
                h = self.forward_hop(hop, h, _hop_prompts(prompts, hop, start), _hop_lora(lora, hop, start))
            return h.to(x.dtype), inputs

        return self.with_failover(run, start, end)

    def backward(self, start: int, end: int, x: torch.Tensor, grad: torch.Tensor,
                 prompts: torch.Tensor | None = None):
        """dL/dx for span [start, end) given its input x and dL/d(output); with prompts
        (end - start, B, P, C): the pair (dL/dx, dL/dprompts). A failed hop is retried on a
        fresh route with the same prompts."""
        g, gp, _ = self.backward_tuned(start, end, x, grad, prompts)
        return g if prompts is None else (g, gp)

    def backward_tuned(self, start: int, end: int, x: torch.Tensor, grad: torch.Tensor,
                       prompts: torch.Tensor | None = None, lora: lora_mod.Lora | None = None):
        """(dL/dx, dL/dprompts or None, dL/dLoRA or None) for span [start, end), as backward()."""
        check_prompts(prompts, x, end - start)
        check_lora_blocks(lora, end - start)

        def run(hops):
            inputs, h = [], x
            for hop in hops[:-1]:  # a re-split span needs its intermediate inputs again
                inputs.append(h)
                h = self.forward_hop(hop, h, _hop_prompts(prompts, hop, start), _hop_lora(lora, hop, start))
            inputs.append(h)
            g, grad_prompts, grad_lora = grad, [], []
            for hop, h_in in zip(reversed(hops), reversed(inputs)):
                g, gp, gl = self.backward_hop_tuned(hop, h_in, g, _hop_prompts(prompts, hop, start),
                                                    _hop_lora(lora, hop, start))
                grad_prompts.insert(0, gp)
                grad_lora.insert(0, gl)
            gp = None if prompts is None else torch.cat(grad_prompts).to(prompts.dtype)
            return g.to(grad.dtype), gp, None if lora is None else _cat_lora(grad_lora, lora)

        return self.with_failover(run, start, end)


def _decode(address: str, msg: pb.Tensor, shape) -> torch.Tensor:
    try:
        y = wire.decode(msg)
    except wire.WireError as exc:
        raise ServerFailure(address, str(exc)) from exc
    if y.shape != shape:
        raise ServerFailure(address, f"returned shape {tuple(y.shape)} for {tuple(shape)}")
    return y


def check_prompts(prompts: torch.Tensor | None, x: torch.Tensor, n_blocks: int) -> None:
    """Raise ValueError unless prompts is None or (n_blocks, B, P <= T, C) for x (B, T, C)."""
    if prompts is None:
        return
    B, T, C = x.shape
    if prompts.dim() != 4 or (prompts.shape[0], prompts.shape[1], prompts.shape[3]) != (n_blocks, B, C) \
            or not 1 <= prompts.shape[2] <= T:
        raise ValueError(f"deep prompts must be (blocks={n_blocks}, batch={B}, pre_seq_len in [1, {T}], "
                         f"hidden={C}), got {tuple(prompts.shape)}")


def check_lora_blocks(lora: lora_mod.Lora | None, n_blocks: int) -> None:
    """Raise ValueError unless lora is None or holds weights for exactly n_blocks blocks."""
    if lora is not None and any(t.dim() != 3 or t.shape[0] != n_blocks for t in lora.tensors()):
        raise ValueError(f"LoRA tensors must be (blocks={n_blocks}, ., .), got "
                         f"{[tuple(t.shape) for t in lora.tensors()]}")


def _hop_lora(lora: lora_mod.Lora | None, hop: Hop, start: int) -> lora_mod.Lora | None:
    return None if lora is None else lora.slice(hop.start - start, hop.end - start)


def _cat_lora(parts: list[lora_mod.Lora], like: lora_mod.Lora) -> lora_mod.Lora:
    """Per-hop LoRA gradients joined along blocks, in like's dtypes."""
    flat = [torch.cat(ts).to(t.dtype) for ts, t in zip(zip(*(p.tensors() for p in parts)), like.tensors())]
    return like.with_tensors(flat)


def _on_wire(value, dtype: torch.dtype):
    """Prompts tensor or Lora, detached, contiguous, in the server's dtype (None stays None)."""
    if value is None:
        return None
    if isinstance(value, lora_mod.Lora):
        return value.map(lambda t: t.detach().to(dtype).contiguous())
    return value.detach().to(dtype).contiguous()


def _attach(req, prompts: torch.Tensor | None, lora: lora_mod.Lora | None, adapter: str = "") -> None:
    req.adapter = adapter
    if prompts is not None:
        req.prompts.CopyFrom(wire.encode(prompts))
    if lora is not None:
        req.lora.CopyFrom(lora_mod.to_proto(lora))


def _decode_lora_grads(address: str, resp, lora: lora_mod.Lora) -> lora_mod.Lora:
    """The LoRA gradients of a Backward response, shaped like the weights sent, finite."""
    if not resp.HasField("grad_lora"):
        raise ServerFailure(address, "returned no gradient for the LoRA weights it was sent")
    msg = resp.grad_lora
    if [t.module for t in msg.targets] != list(lora.targets):
        raise ServerFailure(address, f"returned LoRA gradients for {[t.module for t in msg.targets]}, "
                                     f"sent {list(lora.targets)}")
    flat = []
    for t, a, b in zip(msg.targets, lora.a, lora.b):
        flat += [_decode(address, t.a, a.shape), _decode(address, t.b, b.shape)]
    if not all(wire.all_finite(g) for g in flat):
        raise ServerFailure(address, "returned non-finite LoRA gradients")
    return lora.with_tensors(flat)


def _hop_prompts(prompts: torch.Tensor | None, hop: Hop, start: int) -> torch.Tensor | None:
    """The hop's slice (hop blocks, B, P, C) of prompts for blocks [start, ...)."""
    return None if prompts is None else prompts[hop.start - start:hop.end - start]


class RemoteBlocks(torch.autograd.Function):
    """hidden -> hidden through remote blocks [start, end) (default all); backward calls the
    servers' Backward."""

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, runner: RemoteRunner, start: int = 0, end: int | None = None):
        out, inputs = runner.forward(hidden.detach(), start, end)
        ctx.runner, ctx.inputs = runner, inputs
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        for start, end, x in reversed(ctx.inputs):
            grad = ctx.runner.backward(start, end, x, grad)
        return grad, None, None, None


class RemoteTunedBlocks(torch.autograd.Function):
    """(hidden (B, T, C), prompts (num_blocks, B, P, C) or None, runner, lora layout or None,
    *LoRA tensors [A_0, B_0, ...] for all blocks) -> hidden through all remote blocks; backward
    returns the gradients of hidden, prompts and every LoRA tensor (servers' Backward)."""

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, prompts, runner: RemoteRunner, layout, *lora_tensors):
        prompts = None if prompts is None else prompts.detach()
        lora = None if layout is None else layout.with_tensors([t.detach() for t in lora_tensors])
        out, inputs = runner.forward(hidden.detach(), prompts=prompts, lora=lora)
        ctx.runner, ctx.inputs, ctx.prompts, ctx.lora = runner, inputs, prompts, lora
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        base, prompt_parts, lora_parts = ctx.inputs[0][0], [], []
        for start, end, x in reversed(ctx.inputs):
            p = None if ctx.prompts is None else ctx.prompts[start - base:end - base]
            w = None if ctx.lora is None else ctx.lora.slice(start - base, end - base)
            grad, gp, gl = ctx.runner.backward_tuned(start, end, x, grad, p, w)
            prompt_parts.insert(0, gp)
            lora_parts.insert(0, gl)
        gp = None if ctx.prompts is None else torch.cat(prompt_parts)
        gl = [] if ctx.lora is None else _cat_lora(lora_parts, ctx.lora).tensors()
        return (grad, gp, None, None, *gl)


class RemoteDeepBlocks:
    """(hidden (B, T, C), prompts (num_blocks, B, P, C)) -> hidden through all remote blocks
    with deep prompts; autograd reaches both (RemoteTunedBlocks without LoRA)."""

    @staticmethod
    def apply(hidden: torch.Tensor, prompts: torch.Tensor, runner: RemoteRunner) -> torch.Tensor:
        return RemoteTunedBlocks.apply(hidden, prompts, runner, None)
