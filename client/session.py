"""Inference sessions: step-by-step hidden states through a chain of servers' KV caches.

The session keeps, for every hop, all inputs it sent. When a server fails (dies, errs, or
returns a bad receipt), that hop's span is re-routed and its input history replayed to the
replacement(s) as one step, so the continuation is the same as without the failure.

Deep prompts (client.remote) go with the session's first step only: `step(hidden, prompts)` at
position 0; each hop is sent its slice with its step 0, a failover's replay (step 0 of the
replacement) sends it again. A published adapter (`adapter=CID`, loaded by the servers) is named
in every hop's SessionOpen and folded into step 0's inputHash (pollen.receipts.fold_adapter).

Server-to-server push (`push=`, node/push.py): where two consecutive hops both support it, the
client sends a step's input to the first of them only, with the next hop and a one-step token;
the next hop is sent at the same time a request saying "input comes by push" (sha256 of the
token). Each hop still answers the client, which verifies every receipt exactly as for relayed
hops (the input-hash chain names the previous hop's signed output hash), keeps every hop's
input history for failovers and pays every hop per step. If the next hop has not answered
`push_grace_s` after the previous hop's output came back, the client sends its own copy too
(`fallback`; the hop uses whichever came first), so a failed push costs time, not the step.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field

import torch

from client.connection import InferenceStream
from client.errors import ReceiptRejected, RequestRejected, ServerFailure, SessionClosed, SessionTooLong
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
    push: bool = False  # the server accepts pushes (InfoResponse.push)
    rtt: float = 0.001  # measured round trip (s), for the push grace
    opened: bool = False  # `open` was sent (with step 0, relayed or pushed)
    awaiting: str | None = None  # address of the hop that pushes this step's input (request outstanding)


class InferenceSession:
    def __init__(self, swarm: RemoteSwarm, verifier: ReceiptVerifier, max_length: int,
                 batch_size: int = 1, compress: bool = False, max_failures: int = 5,
                 start: int = 0, end: int | None = None, adapter: str = "", push: bool | None = None,
                 push_wait_s: float = 30.0, push_grace_s: float | None = None):
        """`push`: server-to-server push between consecutive hops that support it (None: wherever
        supported, False: always client-relayed); `push_wait_s`: how long a hop waits for a
        pushed input; `push_grace_s`: wait after the previous hop's output before sending the
        client's own copy (None: the hop's round trip + 50 ms)."""
        self.swarm, self.verifier, self.adapter = swarm, verifier, adapter
        self.max_length, self.batch_size, self.compress = max_length, batch_size, compress
        self.max_failures = max_failures
        self.start, self.end = start, swarm.num_blocks if end is None else end
        self.position = 0  # tokens processed so far
        self.receipts: list[ReceiptRecord] = []
        self.incidents: list[NonFiniteOutput] = []  # signed non-finite outputs (disputable)
        self.failovers = 0
        self.pending_ids: torch.Tensor | None = None  # sampled but not yet sent (generate)
        self.output_ids: torch.Tensor | None = None  # (B, n) tokens of earlier generate() calls
        self.on_context = None  # fn(session | None) on entering / leaving a `with` block (active session)
        self._hops: list[HopSession] | None = None
        self._closed = False
        self.prompts: torch.Tensor | None = None  # (end - start, B, P, C), set by the first step
        self.payer = None  # client.payer.Payer: pays each verified step (None: free tier)
        self.push, self.push_wait_s, self.push_grace_s = push, push_wait_s, push_grace_s
        self.pushed = 0  # hop steps whose input came by push
        self.push_fallbacks = 0  # hop steps announced as pushed that ran on the client's copy / resend

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
                y = self._advance(i, x)
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
        if self.on_context is not None:
            self.on_context(self)
        return self

    def __exit__(self, *exc):
        if self.on_context is not None:
            self.on_context(None)
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
        return HopSession(hop, stream, os.urandom(32), view.signer, view.operator, dtype, prompts=prompts,
                          push=view.info.push, rtt=view.state.rtt)

    def _advance(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """Hop i's step on input x (B, T, C): relayed, with pushes announced down the route
        where possible, or the end of a step whose input was announced as pushed."""
        hs = self._hops[i]
        if hs.awaiting is not None:
            return self._receive_pushed(hs, x)
        push_to = self._announce(i + 1) if self._can_push(i) else None
        return self._send(hs, x, push_to)

    def _can_push(self, i: int) -> bool:
        if self.push is False or self.compress or i + 1 >= len(self._hops):
            return False
        a, b = self._hops[i], self._hops[i + 1]
        return a.push and b.push and b.awaiting is None and a.dtype == b.dtype

    def _announce(self, j: int) -> pb.PushTo:
        """Send hop j its "input comes by push" request (announcing pushes further down the
        route first); returns what its predecessor needs to push to it."""
        hs = self._hops[j]
        push_to = self._announce(j + 1) if self._can_push(j) else None
        token = os.urandom(32)
        request = self._request(hs, pb.InferenceRequest(step=hs.step, pushed=pb.PushedInput(
            token_hash=hashlib.sha256(token).digest(), wait_ms=int(self.push_wait_s * 1e3))))
        if push_to is not None:
            request.push.CopyFrom(push_to)
        hs.stream.send(request)
        hs.awaiting = self._hops[j - 1].hop.address
        return pb.PushTo(address=hs.hop.address, session_id=hs.session_id, step=hs.step, token=token,
                         wait_ms=int(self.push_wait_s * 1e3))

    def _receive_pushed(self, hs: HopSession, x: torch.Tensor) -> torch.Tensor:
        """The response to a pushed step whose input the client now holds (x, the previous hop's
        verified output): sent as `fallback` after the grace, or again if the hop got none."""
        x = x.to(hs.dtype)
        msg = wire.encode(x, self.compress)
        grace = self.push_grace_s if self.push_grace_s is not None else hs.rtt + 0.05
        response = hs.stream.receive(timeout=grace)
        if response is None:
            hs.stream.send(pb.InferenceRequest(hidden=msg, step=hs.step, fallback=True))
            response = hs.stream.receive()
        pusher, hs.awaiting = hs.awaiting, None
        if response.push_error:
            log.info("push to %s failed (%s): sending the input", hs.hop.address, response.push_error)
            response = hs.stream.call(self._request(hs, pb.InferenceRequest(hidden=msg, step=hs.step)))
        if response.pushed:
            self.pushed += 1
        else:
            self.push_fallbacks += 1
        try:
            return self._accept(hs, x, msg, response)
        except ReceiptRejected:
            if response.pushed:  # its input hash is not the pusher's signed output: stop pushing
                log.warning("input pushed by %s to %s does not chain: no more pushes", pusher, hs.hop.address)
                self.push = False
                self.swarm.fail(pusher)
            raise

    def _request(self, hs: HopSession, request: pb.InferenceRequest) -> pb.InferenceRequest:
        """Add what the step carries besides its input: `open` (once), deep prompts, payment."""
        if hs.step == 0:
            if not hs.opened:
                request.open.CopyFrom(pb.SessionOpen(
                    session_id=hs.session_id, start=hs.hop.start, end=hs.hop.end,
                    max_length=self.max_length, batch_size=self.batch_size, compress_output=self.compress,
                    adapter=self.adapter))
            if hs.prompts is not None:
                request.prompts.CopyFrom(wire.encode(hs.prompts))
        if self.payer is not None and (payment := self.payer.payment(hs.session_id, hs.operator, not hs.opened)):
            request.payment.CopyFrom(payment)
        hs.opened = True
        return request

    def _send(self, hs: HopSession, x: torch.Tensor, push_to: pb.PushTo | None = None) -> torch.Tensor:
        """One step on one hop: send, receive, verify the receipt, remember the input."""
        x = x.to(hs.dtype)
        request = self._request(hs, pb.InferenceRequest(hidden=wire.encode(x, self.compress), step=hs.step))
        if push_to is not None:
            request.push.CopyFrom(push_to)
        return self._accept(hs, x, request.hidden, hs.stream.call(request))

    def _accept(self, hs: HopSession, x: torch.Tensor, sent: pb.Tensor, response: pb.InferenceResponse
                ) -> torch.Tensor:
        """Check hop hs's response to input x (sent as message `sent`), keep its receipt, pay it."""
        try:
            y = wire.decode(response.hidden, max_elements=x.numel())
        except wire.WireError as exc:
            raise ServerFailure(hs.hop.address, str(exc)) from exc
        if y.shape != x.shape:
            raise ServerFailure(hs.hop.address, f"returned shape {tuple(y.shape)} for {tuple(x.shape)}")
        sketches = decode_sketches(hs.hop.address, response.sketches, hs.hop.end - hs.hop.start, tuple(x.shape))
        input_hash = chain_input_hash(hs.input_hash, wire.message_hash(sent))
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
