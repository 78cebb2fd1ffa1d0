"""Inference sessions: step-by-step hidden states through a chain of servers' KV caches.

The session keeps, for every hop, all inputs it sent. When a server fails (dies, errs, or
returns a bad receipt), that hop's span is re-routed and its input history replayed to the
replacement(s) as one step, so the continuation is the same as without the failure.

Deep prompts (client.remote) go with the session's first step only: `step(hidden, prompts)` at
position 0; each hop is sent its slice with its step 0, a failover's replay (step 0 of the
replacement) sends it again. A published adapter (`adapter=CID`, loaded by the servers) is named
in every hop's SessionOpen and folded into step 0's inputHash (pollen.receipts.fold_adapter).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import torch

from client.connection import InferenceStream
from client.errors import RequestRejected, ServerFailure, SessionClosed, SessionTooLong
from client.remote import check_prompts
from client.verify import Expected, NonFiniteOutput, ReceiptRecord, ReceiptVerifier, check_output, decode_sketches
from client.swarm import RemoteSwarm
from pollen import wire
from pollen.proto import swarm_pb2 as pb
from pollen.receipts import KIND_INFERENCE, ZERO_HASH, chain_input_hash, fold_adapter, fold_prompts
from client.routing import Hop

log = logging.getLogger("pollen.client")


@dataclass
class HopSession:
    hop: Hop
    stream: InferenceStream
    session_id: bytes
    signer: str
    operator: str
    dtype: torch.dtype
    history: list[torch.Tensor] = field(default_factory=list)  # inputs sent, in order
    step: int = 0
    input_hash: bytes = ZERO_HASH
    prompts: torch.Tensor | None = None  # deep prompts (hop blocks, B, P, C) sent with step 0


class InferenceSession:
    def __init__(self, swarm: RemoteSwarm, verifier: ReceiptVerifier, max_length: int,
                 batch_size: int = 1, compress: bool = False, max_failures: int = 5,
                 start: int = 0, end: int | None = None, adapter: str = ""):
        self.swarm, self.verifier, self.adapter = swarm, verifier, adapter
        self.max_length, self.batch_size, self.compress = max_length, batch_size, compress
        self.max_failures = max_failures
        self.start, self.end = start, swarm.num_blocks if end is None else end
        self.position = 0  # tokens processed so far
        self.receipts: list[ReceiptRecord] = []
        self.incidents: list[NonFiniteOutput] = []  # signed non-finite outputs (disputable)
        self.failovers = 0
        self.pending_ids: torch.Tensor | None = None  # sampled but not yet sent (generate)
        self._hops: list[HopSession] | None = None
        self._closed = False
        self.prompts: torch.Tensor | None = None  # (end - start, B, P, C), set by the first step
        self.payer = None  # client.payer.Payer: pays each verified step (None: free tier)

    # ---- public ----------------------------------------------------------------------------
    def step(self, hidden: torch.Tensor, prompts: torch.Tensor | None = None) -> torch.Tensor:
        """hidden (B, T, C) -> (B, T, C) after all blocks, caching keys/values server-side;
        prompts: deep prompts (end - start, B, P <= T, C), on the first step only."""
        if self._closed:
            raise SessionClosed()
        if self.position + hidden.shape[1] > self.max_length:
            raise SessionTooLong(self.position, hidden.shape[1], self.max_length)
        if prompts is not None:
            if self.position:
                raise ValueError(f"deep prompts go with the first step, not at position {self.position}")
            check_prompts(prompts, hidden, self.end - self.start)
            self.prompts = prompts.detach()
        if self._hops is None:
            self._hops = [self._open(h) for h in self._route(self.start, self.end)]
        x, i, failures = hidden, 0, 0
        while i < len(self._hops):
            try:
                y = self._send(self._hops[i], x)
            except ServerFailure as exc:
                failures = self._recover(i, exc, failures)
                continue
            i, x = i + 1, y
        self.position += hidden.shape[1]
        return x.to(hidden.dtype)

    @property
    def route(self) -> list[Hop]:
        return [h.hop for h in self._hops or []]

    def close(self) -> None:
        for h in self._hops or []:
            h.stream.close()
        self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- internals -------------------------------------------------------------------------
    def _route(self, start: int, end: int) -> list[Hop]:
        return self.swarm.route(start, end)

    def _open(self, hop: Hop) -> HopSession:
        view = self.swarm.views[hop.address]
        stream = self.swarm.connection(hop.address).open_stream()
        dtype = wire.WIRE_DTYPES[view.info.dtype]
        prompts = None if self.prompts is None else \
            self.prompts[hop.start - self.start:hop.end - self.start].to(dtype).contiguous()
        return HopSession(hop, stream, os.urandom(32), view.signer, view.operator, dtype, prompts=prompts)

    def _send(self, hs: HopSession, x: torch.Tensor) -> torch.Tensor:
        """One step on one hop: send, receive, verify the receipt, remember the input."""
        x = x.to(hs.dtype)
        request = pb.InferenceRequest(hidden=wire.encode(x, self.compress), step=hs.step)
        if hs.step == 0:
            request.open.CopyFrom(pb.SessionOpen(
                session_id=hs.session_id, start=hs.hop.start, end=hs.hop.end,
                max_length=self.max_length, batch_size=self.batch_size, compress_output=self.compress,
                adapter=self.adapter))
            if hs.prompts is not None:
                request.prompts.CopyFrom(wire.encode(hs.prompts))
        if self.payer is not None and (payment := self.payer.payment(hs.session_id, hs.operator, hs.step == 0)):
            request.payment.CopyFrom(payment)
        response = hs.stream.call(request)
        try:
            y = wire.decode(response.hidden, max_elements=x.numel())
        except wire.WireError as exc:
            raise ServerFailure(hs.hop.address, str(exc)) from exc
        if y.shape != x.shape:
            raise ServerFailure(hs.hop.address, f"returned shape {tuple(y.shape)} for {tuple(x.shape)}")
        sketches = decode_sketches(hs.hop.address, response.sketches, hs.hop.end - hs.hop.start, tuple(x.shape))
        input_hash = chain_input_hash(hs.input_hash, wire.message_hash(request.hidden))
        input_hash = fold_prompts(input_hash, hs.prompts if hs.step == 0 else None)
        input_hash = fold_adapter(input_hash, self.adapter if hs.step == 0 else None)
        expected = Expected(hs.signer, hs.operator, hs.session_id, hs.step, hs.hop.start, hs.hop.end, input_hash,
                            KIND_INFERENCE)
        record = self.verifier.check(hs.hop.address, response.receipt, expected,
                                     wire.message_hash(response.hidden), sketches)
        self.receipts.append(record)
        self._record(hs, x, y, sketches, record)
        try:
            check_output(hs.hop.address, record, y, sketches, exact=not self.compress)
        except NonFiniteOutput as exc:  # also during a failover's replay
            exc.inputs = hs.history + [x]  # steps 0..t of that hop, as signed
            exc.prompts = hs.prompts  # and the deep prompts of its step 0 (or None)
            self.incidents.append(exc)
            raise
        if self.payer is not None:  # paid only now: verified, checked, not failed
            self.payer.paid_step(record, record.receipt.digest(self.verifier.domain),
                                 hs.hop.end - hs.hop.start, x.shape[0] * x.shape[1])
        # only output that passed goes into the history a failover replays: the step that
        # failed is sent again, once, by step() to the replacement
        hs.input_hash, hs.step = input_hash, hs.step + 1
        hs.history.append(x)
        return y

    def _record(self, hs: HopSession, x: torch.Tensor, y: torch.Tensor, sketches: torch.Tensor,
                record: ReceiptRecord) -> None:
        """Hook: a verified step (RecordingSession keeps them for spot checks)."""

    def _recover(self, i: int, exc: ServerFailure, failures: int) -> int:
        """Fail over hop i until a replacement works; returns the updated failure count."""
        while True:
            failures += 1
            if failures > self.max_failures:
                raise exc
            try:
                self._failover(i, exc)
                return failures
            except ServerFailure as again:
                exc = again

    def _failover(self, i: int, exc: ServerFailure) -> None:
        """Replace hop i by a fresh route over its span, replaying its input history."""
        failed = self._hops[i]
        log.warning("failover for blocks [%d, %d): %s", failed.hop.start, failed.hop.end, exc)
        self.swarm.fail(exc.address)
        failed.stream.close()
        replay = torch.cat(failed.history, dim=1) if failed.history else None
        new_hops = []
        try:
            for hop in self._route(failed.hop.start, failed.hop.end):
                hs = self._open(hop)
                new_hops.append(hs)
                if replay is not None:
                    replay = self._send(hs, replay)
        except ServerFailure:
            for hs in new_hops:
                hs.stream.close()
            raise
        except RequestRejected as rej:  # a healthy server refusing a replay: treat as failure
            raise ServerFailure(rej.address, str(rej)) from rej
        self._hops[i:i + 1] = new_hops
        self.failovers += 1
