"""FAULT INJECTION: the cheats a rational server might try, for tests, benchmarks and the demo.

Off unless a ServerConfig / `pollen node` names one with `fault` (and `fault_rate` > 0). The
cheating server still signs everything it returns, with sketches consistent with what it
actually computed (a cheater cannot know the honest sketches without doing the honest work).

    skip:B         skip block B (global index): its input is passed on as its output
    skip:B-E       skip blocks B..E (inclusive)
    swap:B         run block B with the weights of its neighbour in the span
    noise:B:S      add Gaussian noise of S x the token's RMS to block B's output
    steer:B:S      add a fixed direction of norm S x the token's norm at block B
    nan:B          put a NaN in block B's output
    quant:MODE     run the span quantised (int8 | nf4) while declaring none (load time)
    garble:S       noise of S x RMS on the span's output (the first wave's cheater)
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from node.errors import ConfigError

KINDS = ("skip", "swap", "noise", "steer", "nan", "quant", "garble")


@dataclass(frozen=True)
class Fault:
    kind: str  # one of KINDS
    first: int = -1  # global block index the fault acts on (skip: first of the range)
    last: int = -1  # skip: last block of the range (inclusive)
    scale: float = 0.0  # noise / steer / garble size
    mode: str = ""  # quant: int8 | nf4

    @classmethod
    def parse(cls, spec: str) -> "Fault | None":
        """'' -> None; else a Fault, or ConfigError naming what is wrong with the spec."""
        if not spec:
            return None
        kind, _, rest = spec.partition(":")
        parts = rest.split(":") if rest else []
        try:
            if kind == "skip" and len(parts) == 1:
                lo, _, hi = parts[0].partition("-")
                return cls("skip", int(lo), int(hi or lo))
            if kind in ("swap", "nan") and len(parts) == 1:
                return cls(kind, int(parts[0]), int(parts[0]))
            if kind in ("noise", "steer") and len(parts) == 2:
                return cls(kind, int(parts[0]), int(parts[0]), float(parts[1]))
            if kind == "quant" and parts in (["int8"], ["nf4"]):
                return cls("quant", mode=parts[0])
            if kind == "garble" and len(parts) == 1:
                return cls("garble", scale=float(parts[0]))
        except ValueError:
            pass
        raise ConfigError(f"bad fault spec {spec!r}: expected one of skip:B, skip:B-E, swap:B, "
                          "noise:B:S, steer:B:S, nan:B, quant:int8|nf4, garble:S")

    def check_span(self, start: int, end: int) -> None:
        if self.kind in ("quant", "garble"):
            return
        if not start <= self.first <= self.last < end:
            raise ConfigError(f"fault {self.kind} on block(s) {self.first}..{self.last} is outside "
                              f"the served span [{start}, {end})")
        if self.kind == "swap" and end - start < 2:
            raise ConfigError("fault swap needs a span of at least 2 blocks")


def tamper_for(fault: Fault | None, span_start: int, n_blocks: int, rng: random.Random):
    """A SpanModel tamper function for one cheated step, or None (honest / load-time fault)."""
    if fault is None or fault.kind == "quant":
        return None
    lo = (n_blocks - 1 if fault.kind == "garble" else fault.first - span_start)
    hi = (n_blocks - 1 if fault.kind == "garble" else fault.last - span_start)
    seed = rng.randrange(2**31)

    def tamper(i, x, run):
        if not lo <= i <= hi:
            return run()
        if fault.kind == "skip":
            return x
        if fault.kind == "swap":
            return _run_with_neighbour(i, x, run, n_blocks)
        y = run()
        if fault.kind == "nan":
            y = y.clone()
            y.view(-1)[0] = float("nan")
            return y
        g = torch.Generator().manual_seed(seed)
        if fault.kind in ("noise", "garble"):
            rms = y.float().pow(2).mean(dim=-1, keepdim=True).sqrt()
            return (y.float() + torch.randn(y.shape, generator=g) * rms * fault.scale).to(y.dtype)
        direction = torch.randn(y.shape[-1], generator=torch.Generator().manual_seed(7))
        direction = direction / direction.norm()
        return (y.float() + direction * y.float().norm(dim=-1, keepdim=True) * fault.scale).to(y.dtype)

    return tamper


def _run_with_neighbour(i, x, run, n_blocks):
    """Block i computed with its neighbour's weights (i - 1, or i + 1 for the span's first)."""
    return run(i - 1 if i > 0 else i + 1)
