"""LoRA weights for a span's blocks, applied per call without touching the frozen weights.

A `Lora` holds, for each target module name (the leaf name inside a block, e.g. "q_proj",
"v_proj"), A (blocks, r, in) and B (blocks, out, r); the target's output becomes
    y = base(x) + (alpha / r) * (x @ A[i].T) @ B[i].T        for block i
as in peft's LoRA (no dropout: servers are deterministic). The client owns and trains them;
servers get them with each Forward / Backward and return their gradient.

Application is by a forward hook on each target module that reads the active weights from a
context variable (`active(...)`): per thread, so an auditor recomputing beside the serving loop
on the same span model never sees a session's adapter, and quantised Linear modules work too.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from dataclasses import dataclass

import torch
from torch import nn

from pollen.errors import PollenError
from pollen.receipts import lora_digest

MAX_RANK = 256
_ACTIVE: contextvars.ContextVar[dict | None] = contextvars.ContextVar("pollen_lora", default=None)


class LoraError(PollenError):
    """LoRA weights that do not fit the blocks they are meant for."""


@dataclass(frozen=True)
class Lora:
    rank: int
    alpha: float
    targets: tuple[str, ...]  # leaf module names, in the order given
    a: tuple[torch.Tensor, ...]  # per target (blocks, r, in)
    b: tuple[torch.Tensor, ...]  # per target (blocks, out, r)

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    @property
    def n_blocks(self) -> int:
        return self.a[0].shape[0]

    def slice(self, lo: int, hi: int) -> "Lora":
        """The weights of blocks [lo, hi) of this Lora's blocks."""
        return Lora(self.rank, self.alpha, self.targets, tuple(t[lo:hi] for t in self.a),
                    tuple(t[lo:hi] for t in self.b))

    def map(self, fn) -> "Lora":
        """Same layout, fn applied to every tensor (dtype casts, detach, requires_grad)."""
        return Lora(self.rank, self.alpha, self.targets, tuple(fn(t) for t in self.a), tuple(fn(t) for t in self.b))

    def tensors(self) -> list[torch.Tensor]:
        """[A_0, B_0, A_1, B_1, ...] in target order (autograd leaves, wire order)."""
        return [t for pair in zip(self.a, self.b) for t in pair]

    def with_tensors(self, flat: list[torch.Tensor]) -> "Lora":
        """The inverse of tensors(): same rank/alpha/targets, these tensors."""
        return Lora(self.rank, self.alpha, self.targets, tuple(flat[0::2]), tuple(flat[1::2]))

    def digest(self) -> bytes:
        return lora_digest(self.rank, self.alpha, list(zip(self.targets, self.a, self.b)))

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors())


def target_shapes(block: nn.Module, targets) -> dict[str, tuple[int, int]]:
    """{target: (in_features, out_features)} of the named leaf modules of one block."""
    found = {name.rsplit(".", 1)[-1]: m for name, m in block.named_modules()}
    shapes = {}
    for t in targets:
        m = found.get(t)
        if m is None or not hasattr(m, "in_features"):
            linear = sorted(k for k, v in found.items() if hasattr(v, "in_features"))
            raise LoraError(f"LoRA target {t!r} is not a linear module of this model's blocks (choose from {linear})")
        shapes[t] = (int(m.in_features), int(m.out_features))
    return shapes


def module_paths(block: nn.Module) -> dict[str, str]:
    """{leaf name: dotted path inside the block} for its linear modules (peft key names)."""
    return {name.rsplit(".", 1)[-1]: name for name, m in block.named_modules() if hasattr(m, "in_features")}


def check(lora: Lora, block: nn.Module, n_blocks: int, dtype: torch.dtype | None = None) -> None:
    """Raise LoraError unless `lora` fits n_blocks blocks shaped like `block` (and dtype, finite)."""
    if not 1 <= lora.rank <= MAX_RANK:
        raise LoraError(f"LoRA rank {lora.rank} not in [1, {MAX_RANK}]")
    if not math.isfinite(lora.alpha) or lora.alpha == 0:
        raise LoraError(f"LoRA alpha {lora.alpha} must be finite and non-zero")
    if not lora.targets or len(set(lora.targets)) != len(lora.targets):
        raise LoraError(f"LoRA targets {list(lora.targets)} must be non-empty and distinct")
    if not len(lora.a) == len(lora.b) == len(lora.targets):
        raise LoraError(f"LoRA has {len(lora.targets)} targets but {len(lora.a)} A and {len(lora.b)} B tensors")
    for t, (fan_in, fan_out), a, b in zip(lora.targets, target_shapes(block, lora.targets).values(), lora.a, lora.b):
        want_a, want_b = (n_blocks, lora.rank, fan_in), (n_blocks, fan_out, lora.rank)
        if tuple(a.shape) != want_a or tuple(b.shape) != want_b:
            raise LoraError(f"LoRA {t}: A {tuple(a.shape)} / B {tuple(b.shape)}, expected A (blocks, rank, in) = "
                            f"{want_a} and B (blocks, out, rank) = {want_b}")
        for name, x in (("A", a), ("B", b)):
            if dtype is not None and x.dtype != dtype:
                raise LoraError(f"LoRA {t}.{name} is {str(x.dtype).removeprefix('torch.')}, expected "
                                f"{str(dtype).removeprefix('torch.')}")
            if not torch.isfinite(x).all():
                raise LoraError(f"LoRA {t}.{name} contains NaN or inf")


# ---- application -------------------------------------------------------------------------------
def _hook(module: nn.Module, inputs, output):
    weights = _ACTIVE.get()
    if weights is None or id(module) not in weights:
        return None
    a, b, scale = weights[id(module)]  # a (r, in), b (out, r)
    x = inputs[0]
    return output + scale * ((x.to(a.dtype) @ a.T) @ b.T).to(output.dtype)


def _ensure_hooks(block: nn.Module, targets) -> dict[str, nn.Module]:
    found = {name.rsplit(".", 1)[-1]: m for name, m in block.named_modules()}
    mods = {t: found[t] for t in targets}
    for m in mods.values():
        if not getattr(m, "_pollen_lora_hook", False):
            m.register_forward_hook(_hook)
            m._pollen_lora_hook = True
    return mods


@contextlib.contextmanager
def active(blocks, lora: Lora | None):
    """Within the block: the i-th of `blocks` runs with lora's block-i weights (this thread only)."""
    if lora is None:
        yield
        return
    weights = {}
    for i, block in enumerate(blocks):
        for t, m in _ensure_hooks(block, lora.targets).items():
            k = lora.targets.index(t)
            weights[id(m)] = (lora.a[k][i], lora.b[k][i], lora.scale)
    token = _ACTIVE.set(weights)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


# ---- wire ----------------------------------------------------------------------------------------
def to_proto(lora: Lora):
    """pb.Lora message (raw tensors, never 8-bit compressed: gradients must be exact)."""
    from pollen import wire
    from pollen.proto import swarm_pb2 as pb

    return pb.Lora(rank=lora.rank, alpha=lora.alpha, targets=[
        pb.LoraTarget(module=t, a=wire.encode(a.detach().contiguous()), b=wire.encode(b.detach().contiguous()))
        for t, a, b in zip(lora.targets, lora.a, lora.b)])


def from_proto(msg, max_elements: int) -> Lora:
    """Decode a pb.Lora (each tensor bounded by max_elements); LoraError on a malformed one.
    Shapes against the blocks are checked by check()."""
    from pollen import wire

    if not 1 <= msg.rank <= MAX_RANK:
        raise LoraError(f"LoRA rank {msg.rank} not in [1, {MAX_RANK}]")
    if not msg.targets:
        raise LoraError("LoRA has no targets")
    a, b = [], []
    for t in msg.targets:
        try:
            a.append(wire.decode(t.a, max_elements=max_elements))
            b.append(wire.decode(t.b, max_elements=max_elements))
        except wire.WireError as exc:
            raise LoraError(f"LoRA {t.module}: {exc}") from exc
    return Lora(int(msg.rank), float(msg.alpha), tuple(t.module for t in msg.targets), tuple(a), tuple(b))
