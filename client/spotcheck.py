"""Spot checks: replay a session's inputs for a span on another server and compare every step.

`RecordingSession` keeps, per hop session, the inputs exactly as the server decoded them, the
outputs it returned and their verified receipts. After a session, with probability p,
`SpotChecker.check_session` replays each hop's input history to a different server of the same
span as ONE parallel Forward, and compares every step's output within the version's tolerance
(max relative L2 error, never hash equality). On a mismatch a third server breaks the tie; the
server that disagrees with the two others is the one accused, with an evidence bundle
(pollen.evidence) ready for a dispute.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field

import torch

from client.errors import ClientError
from client.model import DistributedModelForCausalLM
from client.session import InferenceSession
from client.verify import ReceiptRecord
from pollen import wire
from pollen.evidence import Evidence, relative_error
from pollen.routing import Hop

log = logging.getLogger("pollen.client.spotcheck")


@dataclass
class HopLog:
    """One hop session's history: what a server was sent, returned and signed."""

    address: str
    start: int
    end: int
    inputs: list[torch.Tensor] = field(default_factory=list)
    outputs: list[torch.Tensor] = field(default_factory=list)
    receipts: list[ReceiptRecord] = field(default_factory=list)


class RecordingSession(InferenceSession):
    """An InferenceSession that also keeps every hop's inputs, outputs and receipts."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.logs: dict[int, tuple[object, HopLog]] = {}

    def _send(self, hs, x: torch.Tensor) -> torch.Tensor:
        y = super()._send(hs, x)
        _, entry = self.logs.setdefault(id(hs), (hs, HopLog(hs.hop.address, hs.hop.start, hs.hop.end)))
        entry.inputs.append(wire.roundtrip(x.to(hs.dtype), self.compress))
        entry.outputs.append(y)
        entry.receipts.append(self.receipts[-1])
        return y

    def hop_logs(self) -> list[HopLog]:
        return [entry for _, entry in self.logs.values() if entry.inputs]


class CheckedModel(DistributedModelForCausalLM):
    """The distributed model whose inference sessions record what spot checks need."""

    def inference_session(self, max_length: int, batch_size: int = 1) -> RecordingSession:
        return RecordingSession(self.swarm, self.verifier, max_length, batch_size, self.compress)


@dataclass
class CheckResult:
    address: str  # the server whose work was checked
    span: tuple[int, int]
    checker: str | None  # who replayed it
    max_error: float | None
    verdict: str  # "ok" | "faulty" | "unresolved" | "skipped"
    accused: str | None = None  # address of the server found faulty (may be the checker)
    evidence: Evidence | None = field(default=None, repr=False)
    note: str = ""


class SpotChecker:
    def __init__(self, model: DistributedModelForCausalLM, tolerance: float, probability: float = 1.0,
                 rng: random.Random | None = None):
        if not 0.0 <= probability <= 1.0:
            raise ClientError(f"spot-check probability {probability} not in [0, 1]")
        self.model, self.tolerance, self.probability = model, tolerance, probability
        self.rng = rng or random.Random()

    def check_session(self, session: RecordingSession) -> list[CheckResult]:
        """With probability p, check every hop of the session; [] when not drawn."""
        if self.rng.random() >= self.probability:
            return []
        return [self.check_hop(h) for h in session.hop_logs()]

    def check_hop(self, h: HopLog) -> CheckResult:
        x = torch.cat(h.inputs, dim=1)
        checker = self._other(h.start, h.end, exclude={h.address})
        if checker is None:
            return CheckResult(h.address, (h.start, h.end), None, None, "skipped", note="no other server")
        y_b, rec_b = self._replay(checker, h, x)
        errors = self._step_errors(h, y_b)
        if max(errors) <= self.tolerance:
            return CheckResult(h.address, (h.start, h.end), checker, max(errors), "ok")
        return self._tie_break(h, x, checker, y_b, rec_b, errors)

    # ---- internals --------------------------------------------------------------------------
    def _other(self, start: int, end: int, exclude: set[str]) -> str | None:
        swarm = self.model.swarm
        swarm.refresh()
        import time

        usable = swarm.bans.usable([v.state for v in swarm.views.values()], time.monotonic())
        cands = [s.address for s in usable if s.start <= start and end <= s.end and s.address not in exclude]
        return self.rng.choice(sorted(cands)) if cands else None

    def _replay(self, address: str, h: HopLog, x: torch.Tensor):
        runner = self.model.runner
        y = runner.forward_hop(Hop(address, h.start, h.end), x)
        return y, runner.receipts[-1]

    def _step_errors(self, h: HopLog, reference: torch.Tensor) -> list[float]:
        errors, pos = [], 0
        for y in h.outputs:
            n = y.shape[1]
            errors.append(relative_error(y, reference[:, pos:pos + n]))
            pos += n
        return errors

    def _tie_break(self, h: HopLog, x, checker: str, y_b, rec_b, errors) -> CheckResult:
        span = (h.start, h.end)
        third = self._other(h.start, h.end, exclude={h.address, checker})
        if third is None:
            return CheckResult(h.address, span, checker, max(errors), "unresolved",
                               note="mismatch but no third server to break the tie")
        y_c, _ = self._replay(third, h, x)
        a_vs_c = max(self._step_errors(h, y_c))
        b_vs_c = relative_error(y_b, y_c)
        if b_vs_c <= self.tolerance < a_vs_c:
            k = next(i for i, e in enumerate(errors) if e > self.tolerance)
            ev = Evidence(h.receipts[k].receipt, h.receipts[k].signature, h.inputs[:k + 1], h.outputs[:k + 1])
            return CheckResult(h.address, span, checker, max(errors), "faulty", h.address, ev,
                               note=f"step {k} off by {errors[k]:.3g}; {third} agrees with {checker}")
        if a_vs_c <= self.tolerance < b_vs_c:
            x_sent = wire.roundtrip(x.to(y_b.dtype), self.model.compress)
            ev = Evidence(rec_b.receipt, rec_b.signature, [x_sent], [y_b])
            return CheckResult(h.address, span, checker, max(errors), "faulty", checker, ev,
                               note=f"the checker {checker} is the odd one out ({b_vs_c:.3g})")
        return CheckResult(h.address, span, checker, max(errors), "unresolved",
                           note=f"three-way disagreement ({a_vs_c:.3g}, {b_vs_c:.3g})")
