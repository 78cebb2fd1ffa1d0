"""Parallel forward / backward through the swarm (no KV cache), with autograd and retries.

Deep prompts (Petals' deep prompt tuning): `prompts` (end - start, B, P, C) for blocks
[start, end); before block i, prompts[i - start] is added to hidden[:, :P] (the P prompt tokens
the caller prepended). Each hop gets the slice for its blocks; Backward returns their gradient.
RemoteDeepBlocks is the autograd Function that makes torch.autograd reach the prompts.
"""

from __future__ import annotations

import os

import torch

from client.errors import ServerFailure
from client.swarm import RemoteSwarm
from client.verify import Expected, ReceiptRecord, ReceiptVerifier, check_output, decode_sketches
from pollen import wire
from pollen.proto import swarm_pb2 as pb
from pollen.receipts import (KIND_BACKWARD, KIND_FORWARD, ZERO_HASH, chain_input_hash, fold_grads, fold_prompts,
                             hash_tensor)
from pollen.routing import Hop


class RemoteRunner:
    """Runs spans with Forward / Backward RPCs, verifying receipts, re-routing on failure."""

    def __init__(self, swarm: RemoteSwarm, verifier: ReceiptVerifier, compress: bool = False,
                 max_failures: int = 5, timeout: float = 120.0):
        self.swarm, self.verifier, self.compress = swarm, verifier, compress
        self.max_failures, self.timeout = max_failures, timeout
        self.receipts: list[ReceiptRecord] = []

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
        return sketches

    def forward_hop(self, hop: Hop, x: torch.Tensor, prompts: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, C) through the hop's blocks; prompts (hop blocks, B, P, C) or None."""
        dtype = wire.WIRE_DTYPES[self.swarm.views[hop.address].info.dtype]
        x = x.to(dtype)
        prompts = None if prompts is None else prompts.detach().to(dtype).contiguous()
        sid = os.urandom(32)
        req = pb.ForwardRequest(session_id=sid, start=hop.start, end=hop.end,
                                hidden=wire.encode(x, self.compress), compress_output=self.compress)
        if prompts is not None:
            req.prompts.CopyFrom(wire.encode(prompts))
        resp = self.swarm.connection(hop.address).call("Forward", req, self.timeout)
        y = _decode(hop.address, resp.hidden, x.shape)
        input_hash = chain_input_hash(ZERO_HASH, hash_tensor(wire.roundtrip(x, self.compress)))
        input_hash = fold_prompts(input_hash, prompts)
        self._verified(hop, resp, self._expect(hop, sid, input_hash, KIND_FORWARD), y, not self.compress)
        return y

    def backward_hop(self, hop: Hop, x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """dL/dx (B, T, C) of one hop without prompts."""
        return self.backward_hop_prompted(hop, x, grad, None)[0]

    def backward_hop_prompted(self, hop: Hop, x: torch.Tensor, grad: torch.Tensor,
                              prompts: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(dL/dx (B, T, C), dL/dprompts (hop blocks, B, P, C) or None) of one hop."""
        dtype = wire.WIRE_DTYPES[self.swarm.views[hop.address].info.dtype]
        x, grad = x.to(dtype), grad.to(dtype)
        prompts = None if prompts is None else prompts.detach().to(dtype).contiguous()
        sid = os.urandom(32)
        req = pb.BackwardRequest(session_id=sid, start=hop.start, end=hop.end,
                                 hidden=wire.encode(x), grad_output=wire.encode(grad))
        if prompts is not None:
            req.prompts.CopyFrom(wire.encode(prompts))
        resp = self.swarm.connection(hop.address).call("Backward", req, self.timeout)
        g = _decode(hop.address, resp.grad_input, x.shape)
        gp = None
        if prompts is not None:
            if not resp.HasField("grad_prompts"):
                raise ServerFailure(hop.address, "returned no gradient for the deep prompts it was sent")
            gp = _decode(hop.address, resp.grad_prompts, prompts.shape)
        input_hash = chain_input_hash(chain_input_hash(ZERO_HASH, hash_tensor(x)), hash_tensor(grad))
        expected = self._expect(hop, sid, fold_prompts(input_hash, prompts), KIND_BACKWARD)
        self._verified(hop, resp, expected, g, exact=False, output_hash=fold_grads(hash_tensor(g), gp))
        if gp is not None and not wire.all_finite(gp):
            raise ServerFailure(hop.address, "returned non-finite prompt gradients")
        return g, gp

    def forward(self, x: torch.Tensor, start: int = 0, end: int | None = None,
                prompts: torch.Tensor | None = None):
        """(output, [(start, end, input)] per hop actually used); prompts (end - start, B, P, C)."""
        end = self.swarm.num_blocks if end is None else end
        check_prompts(prompts, x, end - start)

        def run(hops):
            inputs, h = [], x
            for hop in hops:
                inputs.append((hop.start, hop.end, h))
                h = self.forward_hop(hop, h, _hop_prompts(prompts, hop, start))
            return h.to(x.dtype), inputs

        return self.with_failover(run, start, end)

    def backward(self, start: int, end: int, x: torch.Tensor, grad: torch.Tensor,
                 prompts: torch.Tensor | None = None):
        """dL/dx for span [start, end) given its input x and dL/d(output); with prompts
        (end - start, B, P, C): the pair (dL/dx, dL/dprompts). A failed hop is retried on a
        fresh route with the same prompts."""
        check_prompts(prompts, x, end - start)

        def run(hops):
            inputs, h = [], x
            for hop in hops[:-1]:  # a re-split span needs its intermediate inputs again
                inputs.append(h)
                h = self.forward_hop(hop, h, _hop_prompts(prompts, hop, start))
            inputs.append(h)
            g, grad_prompts = grad, []
            for hop, h_in in zip(reversed(hops), reversed(inputs)):
                g, gp = self.backward_hop_prompted(hop, h_in, g, _hop_prompts(prompts, hop, start))
                grad_prompts.insert(0, gp)
            if prompts is None:
                return g.to(grad.dtype)
            return g.to(grad.dtype), torch.cat(grad_prompts).to(prompts.dtype)

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


def _hop_prompts(prompts: torch.Tensor | None, hop: Hop, start: int) -> torch.Tensor | None:
    """The hop's slice (hop blocks, B, P, C) of prompts for blocks [start, ...)."""
    return None if prompts is None else prompts[hop.start - start:hop.end - start]


class RemoteBlocks(torch.autograd.Function):
    """hidden -> hidden through all remote blocks; backward calls the servers' Backward."""

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, runner: RemoteRunner):
        out, inputs = runner.forward(hidden.detach())
        ctx.runner, ctx.inputs = runner, inputs
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        for start, end, x in reversed(ctx.inputs):
            grad = ctx.runner.backward(start, end, x, grad)
        return grad, None


class RemoteDeepBlocks(torch.autograd.Function):
    """(hidden (B, T, C), prompts (num_blocks, B, P, C)) -> hidden through all remote blocks
    with deep prompts; backward returns the gradients of both (servers' Backward)."""

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, prompts: torch.Tensor, runner: RemoteRunner):
        prompts = prompts.detach()
        out, inputs = runner.forward(hidden.detach(), prompts=prompts)
        ctx.runner, ctx.inputs, ctx.prompts = runner, inputs, prompts
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        base, parts = ctx.inputs[0][0], []
        for start, end, x in reversed(ctx.inputs):
            grad, gp = ctx.runner.backward(start, end, x, grad, ctx.prompts[start - base:end - base])
            parts.insert(0, gp)
        return grad, torch.cat(parts), None
