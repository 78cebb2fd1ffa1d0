"""Parallel forward / backward through the swarm (no KV cache), with autograd and retries."""

from __future__ import annotations

import os

import torch

from client.errors import ServerFailure
from client.swarm import RemoteSwarm
from client.verify import Expected, ReceiptRecord, ReceiptVerifier, check_output, decode_sketches
from pollen import wire
from pollen.proto import swarm_pb2 as pb
from pollen.receipts import KIND_BACKWARD, KIND_FORWARD, ZERO_HASH, chain_input_hash, hash_tensor
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

    def _verified(self, hop: Hop, resp, expected: Expected, out: torch.Tensor, exact: bool):
        """Check the receipt and the sketches of a Forward/Backward response; returns them."""
        sketches = decode_sketches(hop.address, resp.sketches, hop.end - hop.start, tuple(out.shape))
        record = self.verifier.check(hop.address, resp.receipt, expected, out, sketches)
        self.receipts.append(record)
        check_output(hop.address, record, out, sketches, exact=exact)
        return sketches

    def forward_hop(self, hop: Hop, x: torch.Tensor) -> torch.Tensor:
        dtype = wire.WIRE_DTYPES[self.swarm.views[hop.address].info.dtype]
        x = x.to(dtype)
        sid = os.urandom(32)
        req = pb.ForwardRequest(session_id=sid, start=hop.start, end=hop.end,
                                hidden=wire.encode(x, self.compress), compress_output=self.compress)
        resp = self.swarm.connection(hop.address).call("Forward", req, self.timeout)
        y = _decode(hop.address, resp.hidden, x.shape)
        input_hash = chain_input_hash(ZERO_HASH, hash_tensor(wire.roundtrip(x, self.compress)))
        self._verified(hop, resp, self._expect(hop, sid, input_hash, KIND_FORWARD), y, not self.compress)
        return y

    def backward_hop(self, hop: Hop, x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        dtype = wire.WIRE_DTYPES[self.swarm.views[hop.address].info.dtype]
        x, grad = x.to(dtype), grad.to(dtype)
        sid = os.urandom(32)
        req = pb.BackwardRequest(session_id=sid, start=hop.start, end=hop.end,
                                 hidden=wire.encode(x), grad_output=wire.encode(grad))
        resp = self.swarm.connection(hop.address).call("Backward", req, self.timeout)
        g = _decode(hop.address, resp.grad_input, x.shape)
        input_hash = chain_input_hash(chain_input_hash(ZERO_HASH, hash_tensor(x)), hash_tensor(grad))
        self._verified(hop, resp, self._expect(hop, sid, input_hash, KIND_BACKWARD), g, exact=False)
        return g

    def forward(self, x: torch.Tensor, start: int = 0, end: int | None = None):
        """(output, [(start, end, input)] per hop actually used)."""
        end = self.swarm.num_blocks if end is None else end

        def run(hops):
            inputs, h = [], x
            for hop in hops:
                inputs.append((hop.start, hop.end, h))
                h = self.forward_hop(hop, h)
            return h.to(x.dtype), inputs

        return self.with_failover(run, start, end)

    def backward(self, start: int, end: int, x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """dL/dx for span [start, end) given its input x and dL/d(output)."""

        def run(hops):
            inputs, h = [], x
            for hop in hops[:-1]:  # a re-split span needs its intermediate inputs again
                inputs.append(h)
                h = self.forward_hop(hop, h)
            inputs.append(h)
            g = grad
            for hop, h_in in zip(reversed(hops), reversed(inputs)):
                g = self.backward_hop(hop, h_in, g)
            return g.to(grad.dtype)

        return self.with_failover(run, start, end)


def _decode(address: str, msg: pb.Tensor, shape) -> torch.Tensor:
    try:
        y = wire.decode(msg)
    except wire.WireError as exc:
        raise ServerFailure(address, str(exc)) from exc
    if y.shape != shape:
        raise ServerFailure(address, f"returned shape {tuple(y.shape)} for {tuple(shape)}")
    return y


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
