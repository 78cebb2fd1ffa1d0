"""Where tensors compute: `--device auto|cpu|cuda[:N]` and `--dtype auto|float32|bfloat16|float16`.

    device = resolve_device("auto")          # cuda:0 when a GPU is visible, else cpu
    dtype = resolve_dtype("auto", device)    # bfloat16 on GPUs that support it, float16 on older
                                             # ones, float32 on the CPU

Everything else is device-agnostic: weights, KV caches and compute live on `device`; the wire
(pollen/wire.py) moves tensors to the host only to serialise them.
"""

from __future__ import annotations

import torch

from pollen.dtypes import NAMES
from pollen.errors import PollenError

DTYPES = NAMES


class DeviceError(PollenError):
    pass


def resolve_device(spec: str = "cpu") -> torch.device:
    """A torch device from a user's spec; DeviceError naming what is missing."""
    spec = (spec or "cpu").strip().lower()
    if spec == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {spec}: no CUDA GPU is visible to torch here (use cpu or auto)")
        index = int(spec.split(":", 1)[1]) if ":" in spec and spec.split(":", 1)[1].isdigit() else 0
        if ":" in spec and not spec.split(":", 1)[1].isdigit():
            raise DeviceError(f"--device {spec}: expected cuda:N")
        if index >= torch.cuda.device_count():
            raise DeviceError(f"--device {spec}: only {torch.cuda.device_count()} GPU(s) visible")
        return torch.device(f"cuda:{index}")
    raise DeviceError(f"--device {spec!r}: expected auto, cpu, cuda or cuda:N")


def resolve_dtype(spec: str, device: torch.device) -> str:
    """The compute dtype name for `spec` on `device` ("auto": bf16 / fp16 on GPUs, fp32 on CPU)."""
    spec = (spec or "float32").strip().lower()
    if spec != "auto":
        if spec not in DTYPES:
            raise DeviceError(f"--dtype {spec!r}: expected auto or one of {', '.join(DTYPES)}")
        return spec
    if device.type != "cuda":
        return "float32"
    return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
