"""Tensors on the wire: raw little-endian bytes with dtype and shape, or 8-bit blockwise codes.

`encode` / `decode` convert between torch tensors and the `Tensor` protobuf message. `decode`
checks everything that came from outside (dtype name, shape, byte counts, element budget) and
raises WireError with a clear message; it never trusts the sender.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from pollen.errors import PollenError
from pollen.proto import swarm_pb2 as pb

WIRE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
BLOCK_SIZE = 64  # values per absmax scale in 8-bit blockwise compression


class WireError(PollenError):
    """A tensor message that cannot be decoded (bad dtype, shape or byte count)."""

    def __init__(self, problem: str):
        super().__init__(f"bad tensor message: {problem}")


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _raw_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().cpu().contiguous()  # a no-op for host tensors; one copy off a GPU
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return t.numpy().tobytes()  # x86/arm hosts are little-endian


def quantize_blockwise(x: torch.Tensor, block: int = BLOCK_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """x (any shape) -> (int8 codes (n,), float32 absmax scales (ceil(n/block),))."""
    flat = x.detach().reshape(-1).float()
    n = flat.numel()
    padded = torch.nn.functional.pad(flat, (0, (-n) % block)).view(-1, block)
    scales = padded.abs().amax(dim=1).clamp_min(1e-12)
    codes = torch.round(padded / scales[:, None] * 127).to(torch.int8)
    return codes.reshape(-1)[:n], scales


def dequantize_blockwise(codes: torch.Tensor, scales: torch.Tensor, block: int = BLOCK_SIZE) -> torch.Tensor:
    """Inverse of quantize_blockwise, flat float32 (n,)."""
    n = codes.numel()
    padded = torch.nn.functional.pad(codes.float(), (0, (-n) % block)).view(-1, block)
    return (padded * (scales[:, None] / 127)).reshape(-1)[:n]


def encode(t: torch.Tensor, compress: bool = False) -> pb.Tensor:
    """torch tensor -> Tensor message (compression applies to floating tensors only)."""
    name = dtype_name(t.dtype)
    if name not in WIRE_DTYPES:
        raise WireError(f"dtype {name} cannot travel on the wire")
    msg = pb.Tensor(dtype=name, shape=list(t.shape))
    if compress:
        codes, scales = quantize_blockwise(t)
        msg.compression = pb.BLOCKWISE_8BIT
        msg.data = codes.cpu().numpy().tobytes()
        msg.scales = scales.cpu().numpy().tobytes()
        msg.block_size = BLOCK_SIZE
    else:
        msg.data = _raw_bytes(t)
    return msg


def message_hash(msg: pb.Tensor) -> bytes:
    """Canonical receipt hash of the tensor a message decodes to (raw bytes hashed directly)."""
    from pollen.receipts import hash_tensor, hash_tensor_bytes

    if msg.compression == pb.NONE:
        return hash_tensor_bytes(msg.dtype, tuple(int(s) for s in msg.shape), msg.data)
    return hash_tensor(decode(msg))


def all_finite(t: torch.Tensor) -> bool:
    if t.device.type == "cpu" and (t.dtype == torch.float32 or t.dtype == torch.float16):
        return bool(np.isfinite(t.numpy()).all())  # ~10x cheaper than torch on small tensors
    return bool(torch.isfinite(t).all())


def roundtrip(t: torch.Tensor, compress: bool) -> torch.Tensor:
    """What the receiver will decode for `t` (identity unless compressed)."""
    return decode(encode(t, compress)) if compress else t


def decode(msg: pb.Tensor, max_elements: int | None = None) -> torch.Tensor:
    """Tensor message -> torch tensor, checking every field; raises WireError."""
    if msg.dtype not in WIRE_DTYPES:
        raise WireError(f"unknown dtype {msg.dtype!r} (expected one of {sorted(WIRE_DTYPES)})")
    shape = tuple(int(s) for s in msg.shape)
    if any(s < 0 for s in shape) or len(shape) > 8:
        raise WireError(f"invalid shape {shape}")
    n = math.prod(shape)
    if max_elements is not None and n > max_elements:
        raise WireError(f"{n} elements exceed the limit of {max_elements}")
    dtype = WIRE_DTYPES[msg.dtype]
    if msg.compression == pb.BLOCKWISE_8BIT:
        return _decode_8bit(msg, shape, n, dtype)
    if msg.compression != pb.NONE:
        raise WireError(f"unknown compression {msg.compression}")
    itemsize = torch.empty((), dtype=dtype).element_size()
    if len(msg.data) != n * itemsize:
        raise WireError(f"{len(msg.data)} data bytes for shape {shape} of {msg.dtype}")
    raw = np.frombuffer(msg.data, dtype=np.int16 if dtype == torch.bfloat16 else
                        {torch.float32: np.float32, torch.float16: np.float16}[dtype])
    t = torch.from_numpy(raw.copy())
    if dtype == torch.bfloat16:
        t = t.view(torch.bfloat16)
    return t.reshape(shape)


def _decode_8bit(msg: pb.Tensor, shape: tuple[int, ...], n: int, dtype: torch.dtype) -> torch.Tensor:
    block = int(msg.block_size)
    if block <= 0 or block > 1 << 16:
        raise WireError(f"invalid block size {block}")
    if len(msg.data) != n:
        raise WireError(f"{len(msg.data)} code bytes for {n} values")
    if len(msg.scales) != 4 * math.ceil(n / block):
        raise WireError(f"{len(msg.scales)} scale bytes for {n} values in blocks of {block}")
    codes = torch.from_numpy(np.frombuffer(msg.data, dtype=np.int8).copy())
    scales = torch.from_numpy(np.frombuffer(msg.scales, dtype=np.float32).copy())
    return dequantize_blockwise(codes, scales, block).reshape(shape).to(dtype)
