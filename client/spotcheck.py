"""Spot checks: replay a hop's inputs on other servers, compare every step block by block.

`RecordingSession` keeps, per hop session, the inputs exactly as the server decoded them, the
outputs and per-block sketches it returned and their verified receipts. After a session, with
probability p, `SpotChecker.check_session` replays each hop's input history through a route of
OTHER servers covering the same span, as an ordinary inference session with the original step
pattern (one step per original step, same chunk sizes, the same declared max_length), so a
server cannot tell a check from traffic. Every step's per-block sketches are compared
(pollen.judgment: per block, per token, within the version's tolerance, never hash equality);
the first (step, block) that differs is the bisection point a dispute names.

On a mismatch a third route breaks the tie: whoever disagrees with the two others is accused,
with an evidence bundle naming its first wrong block. With no third route the two signed
receipts conflict: both are put to the court ("conflict"), whose auditors decide; the honest
one's dispute costs the challenger one bond, the cheater's pays the finder's reward.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field

import torch

from client.errors import ClientError, ServerFailure
from client.model import DistributedModelForCausalLM
from client.session import HopSession, InferenceSession
from client.verify import ReceiptRecord
from pollen import judgment, wire
from pollen.evidence import Evidence

log = logging.getLogger("pollen.client.spotcheck")


@dataclass
class HopLog:
    """One hop session's history: what a server was sent, returned and signed, step by step."""

    address: str
    start: int
    end: int
    inputs: list[torch.Tensor] = field(default_factory=list)
    outputs: list[torch.Tensor] = field(default_factory=list)
    sketches: list[torch.Tensor] = field(default_factory=list)  # (blocks, B, T, K) per step
    receipts: list[ReceiptRecord] = field(default_factory=list)
    max_length: int | None = None  # what the session declared when it opened this hop
    prompts: torch.Tensor | None = None  # deep prompts (blocks, B, P, C) sent with step 0
    adapter: str = ""  # CID of the published adapter the session named ("" = none)

    def evidence(self, step: int, block: int) -> Evidence:
        """The bundle against this server's receipt of `step`, naming `block`."""
        rec = self.receipts[step]
        return Evidence(rec.receipt, rec.signature, self.inputs[:step + 1], self.outputs[step],
                        self.sketches[step], block, prompts=self.prompts, adapter=self.adapter)


class RecordingSession(InferenceSession):
    """An InferenceSession that also keeps every hop's inputs, outputs, sketches and receipts."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.logs: dict[int, HopLog] = {}

    def _record(self, hs: HopSession, x, y, sketches, record) -> None:
        entry = self.logs.setdefault(id(hs), HopLog(hs.hop.address, hs.hop.start, hs.hop.end,
                                                     max_length=self.max_length, prompts=hs.prompts,
                                                     adapter=self.adapter))
        entry.inputs.append(wire.roundtrip(x, self.compress))
        entry.outputs.append(y)
        entry.sketches.append(sketches)
        entry.receipts.append(record)

    def hop_logs(self) -> list[HopLog]:
        return [entry for entry in self.logs.values() if entry.inputs]


class CheckedModel(DistributedModelForCausalLM):
    """The distributed model whose inference sessions record what spot checks need."""

    def _new_session(self, max_length: int, batch_size: int = 1) -> RecordingSession:
        session = RecordingSession(self.swarm, self.verifier, max_length, batch_size, self.compress,
                                   adapter=self.active_adapter)
        session.payer = self.payer
        return session


@dataclass
class CheckResult:
    address: str  # the server whose work was checked
    span: tuple[int, int]
    checker: str | None  # who replayed it (a route may have several servers: the first named)
    max_error: float | None
    verdict: str  # "ok" | "faulty" | "conflict" | "unresolved" | "skipped"
    accused: list[str] = field(default_factory=list)  # servers to dispute (two for a conflict)
    evidence: list[Evidence] = field(default_factory=list, repr=False)  # one bundle per accused
    block: int | None = None  # first block found to differ (the bisection point)
    step: int | None = None  # first step found to differ
    note: str = ""


@dataclass
class Replay:
    """A replay of one hop's steps through a route of other servers."""

    logs: list[HopLog]  # sub-hops in block order
    sketches: list[torch.Tensor]  # per step, (blocks of the whole span, B, T, K)
    outputs: list[torch.Tensor]

    @property
    def servers(self) -> set[str]:
        return {h.address for h in self.logs}

    def log_for(self, block: int) -> HopLog:
        return next(h for h in self.logs if h.start <= block < h.end)


class SpotChecker:
    def __init__(self, model: DistributedModelForCausalLM, tolerance: float, probability: float = 1.0,
                 rng: random.Random | None = None):
        if not 0.0 <= probability <= 1.0:
            raise ClientError(f"spot-check probability {probability} not in [0, 1]")
        self.model, self.tolerance, self.probability = model, tolerance, probability
        self.rng = rng or random.Random()

    def check_session(self, session: RecordingSession) -> list[CheckResult]:
        """With probability p, check every hop of the session; [] when not drawn. A hop whose
        last output was not finite is not replayed: that signed claim is already evidence
        (client.onchain.incident_results), and a replay would only accuse it a second time."""
        if self.rng.random() >= self.probability:
            return []
        return [self.check_hop(h) for h in session.hop_logs() if bool(torch.isfinite(h.outputs[-1]).all())]

    def check_hop(self, h: HopLog) -> CheckResult:
        span = (h.start, h.end)
        b = self.replay(h, exclude={h.address})
        if b is None:
            return CheckResult(h.address, span, None, None, "skipped", note="no other route covers this span")
        first = self.first_difference(h, b)
        checker = b.logs[0].address
        worst = self.worst(h, b)
        if first is None:
            return CheckResult(h.address, span, checker, worst, "ok")
        step, block = first
        c = self.replay(h, exclude={h.address} | b.servers)
        if c is None:  # two opinions only: both signed receipts go to the court
            sub = b.log_for(block)
            return CheckResult(h.address, span, checker, worst, "conflict", [h.address, sub.address],
                               [h.evidence(step, block), sub.evidence(step, block)], block, step,
                               note=f"step {step}, block {block} differ; no third route to break the tie")
        a_vs_c = self.first_difference(h, c)
        b_vs_c = self._first_between(b, c)
        if a_vs_c is not None and b_vs_c is None:
            k, blk = a_vs_c
            return CheckResult(h.address, span, checker, worst, "faulty", [h.address], [h.evidence(k, blk)],
                               blk, k, note=f"step {k} block {blk} off; a third route agrees with the checker")
        if a_vs_c is None and b_vs_c is not None:
            k, blk = b_vs_c
            sub = b.log_for(blk)
            return CheckResult(h.address, span, checker, worst, "faulty", [sub.address],
                               [sub.evidence(k, blk)], blk, k, note=f"the checker {sub.address} is the odd one out")
        return CheckResult(h.address, span, checker, worst, "unresolved", step=step, block=block,
                           note="three-way disagreement")

    # ---- replay ------------------------------------------------------------------------------
    def replay(self, h: HopLog, exclude: set[str]) -> Replay | None:
        """h's steps, one by one, through the best route over [start, end) avoiding `exclude`."""
        swarm = self.model.swarm
        try:
            swarm.route(h.start, h.end, exclude=exclude)
        except ClientError:
            return None
        batch = h.inputs[0].shape[0]
        # the original session's max_length, not the tokens replayed: real generation never
        # sends its last sampled token, so a session filled exactly would mark a replay
        length = max(h.max_length or 0, sum(x.shape[1] for x in h.inputs))
        session = _ReplaySession(swarm, self.model.verifier, length, batch, self.model.compress,
                                 start=h.start, end=h.end, exclude=exclude, adapter=h.adapter)
        session.payer = self.model.payer  # a replay pays like real traffic (a free one would stand out)
        try:
            with session:
                for i, x in enumerate(h.inputs):
                    session.step(x, h.prompts if i == 0 else None)
        except ServerFailure as exc:
            log.warning("replay of [%d, %d) failed: %s", h.start, h.end, exc)
            return None
        if session.failovers:
            return None  # the route changed mid-replay: steps no longer line up
        logs = sorted(session.hop_logs(), key=lambda g: g.start)
        sketches = [torch.cat([g.sketches[i] for g in logs]) for i in range(len(h.inputs))]
        return Replay(logs, sketches, logs[-1].outputs)

    # ---- comparisons -------------------------------------------------------------------------
    def first_difference(self, h: HopLog, r: Replay) -> tuple[int, int] | None:
        """First (step, global block) where h's claims and the replay differ beyond tolerance."""
        for step, (mine, theirs) in enumerate(zip(h.sketches, r.sketches)):
            errors = [judgment.max_error(mine[i], theirs[i]) for i in range(mine.shape[0])]
            bad = judgment.first_bad_block(errors, self.tolerance)
            if bad is None and not judgment.max_error(h.outputs[step], r.outputs[step]) <= self.tolerance:
                bad = mine.shape[0] - 1
            if bad is not None:
                return step, h.start + bad
        return None

    def _first_between(self, a: Replay, b: Replay) -> tuple[int, int] | None:
        start = a.logs[0].start
        for step, (x, y) in enumerate(zip(a.sketches, b.sketches)):
            bad = judgment.first_bad_block([judgment.max_error(x[i], y[i]) for i in range(x.shape[0])],
                                           self.tolerance)
            if bad is not None:
                return step, start + bad
        return None

    @staticmethod
    def worst(h: HopLog, r: Replay) -> float:
        return max(judgment.max_error(m, t) for m, t in zip(h.sketches, r.sketches))


class _ReplaySession(RecordingSession):
    """A recording session routed around some servers (spot-check replays)."""

    def __init__(self, *args, exclude: set[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.exclude = frozenset(exclude)

    def _route(self, start: int, end: int):
        return self.swarm.route(start, end, exclude=self.exclude)
