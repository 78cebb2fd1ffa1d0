"""The one dtype table: the names Pollen uses (flags, configs, manifests, the wire, receipts),
their torch dtypes and safetensors' names for them. Imports torch only when asked for a dtype."""

from __future__ import annotations

NAMES = ("float32", "bfloat16", "float16")
SAFETENSORS = {"float32": "F32", "bfloat16": "BF16", "float16": "F16"}  # name -> safetensors header dtype


def torch_dtype(name: str):
    """torch.float32 / bfloat16 / float16 from its name; ValueError naming the choices."""
    if name not in NAMES:
        raise ValueError(f"unknown dtype {name!r} (choose from {', '.join(NAMES)})")
    import torch

    return getattr(torch, name)


def name_of(dtype) -> str:
    """The table's name of a torch dtype; ValueError for any other dtype."""
    name = str(dtype).removeprefix("torch.")
    if name not in NAMES:
        raise ValueError(f"dtype {dtype} is not one of {', '.join(NAMES)}")
    return name


def from_safetensors(code: str) -> str:
    """The table's name of a safetensors header dtype ("F32" -> "float32"); ValueError otherwise."""
    for name, st in SAFETENSORS.items():
        if st == code:
            return name
    raise ValueError(f"safetensors dtype {code} is not one of {', '.join(NAMES)}")
