"""Read a checkpoint's span or client parts (pollen/shards.py owns the split format and writes it).

Two on-disk layouts are understood:
  * a transformers checkpoint dir (config.json + model.safetensors or a sharded index);
  * a Pollen split dir (config.json + pollen_split.json + blocks/block_00000.safetensors ...
    + client.safetensors), one file per block so a server fetches only its span.
Only the tensors a caller needs are read (safetensors opens lazily).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open

from pollen import dtypes
from pollen.model.family import Family, ModelError, family_of
from pollen.model.span import SpanModel
from pollen.shards import SPLIT_INDEX



def load_config(model_dir: str | Path):
    from transformers import AutoConfig

    path = Path(model_dir)
    if not (path / "config.json").is_file():
        raise ModelError(f"{path} has no config.json")
    return AutoConfig.from_pretrained(str(path), local_files_only=True)


def parse_dtype(name: str) -> torch.dtype:
    try:
        return dtypes.torch_dtype(name)
    except ValueError as exc:
        raise ModelError(str(exc)) from None


def _files_for(model_dir: Path, family: Family, blocks: range | None, client: bool) -> list[Path]:
    """Safetensors files that may hold the wanted tensors."""
    if (model_dir / SPLIT_INDEX).is_file():
        index = json.loads((model_dir / SPLIT_INDEX).read_text())
        files = [model_dir / index["blocks"][i] for i in (blocks or [])]
        return files + ([model_dir / index["client"]] if client else [])
    if (model_dir / "model.safetensors.index.json").is_file():
        weight_map = json.loads((model_dir / "model.safetensors.index.json").read_text())["weight_map"]
        return sorted({model_dir / f for f in weight_map.values()})
    single = model_dir / "model.safetensors"
    if not single.is_file():
        raise ModelError(f"{model_dir} has no model.safetensors (or index / {SPLIT_INDEX})")
    return [single]


def read_tensors(files: list[Path], wanted) -> dict[str, torch.Tensor]:
    """Tensors whose key satisfies `wanted(key)`, across the given safetensors files."""
    out: dict[str, torch.Tensor] = {}
    for f in files:
        with safe_open(str(f), framework="pt") as handle:
            for key in handle.keys():
                if wanted(key):
                    out[key] = handle.get_tensor(key)
    return out


def load_span(model_dir: str | Path, start: int, end: int, dtype: str = "float32",
              device: str | torch.device = "cpu") -> SpanModel:
    """Blocks [start, end) with weights on `device`, in eval mode."""
    model_dir = Path(model_dir)
    config = load_config(model_dir)
    family = family_of(config)
    n = family.num_blocks(config)
    if not 0 <= start < end <= n:
        raise ModelError(f"span [{start}, {end}) outside the model's {n} blocks")
    prefixes = {f"{family.block_prefix}{i}.": i - start for i in range(start, end)}
    tensors = read_tensors(_files_for(model_dir, family, range(start, end), client=False),
                           lambda k: k.startswith(tuple(prefixes)))
    state = {}
    for key, value in tensors.items():
        for prefix, local in prefixes.items():
            if key.startswith(prefix):
                state[f"blocks.{local}.{key[len(prefix):]}"] = value
    with torch.device("meta"):
        span = SpanModel(family, config, start, end)
    span = span.to_empty(device="cpu")
    span.positions = family.position_cls(config)  # buffers computed, not loaded
    missing, unexpected = span.load_state_dict(state, strict=False)
    if [m for m in missing if not m.startswith("positions.")] or unexpected:
        raise ModelError(f"span weights do not match: missing {missing[:4]}, unexpected {unexpected[:4]}")
    span = span.to(device=device, dtype=parse_dtype(dtype)).eval().requires_grad_(False)
    span.compute_dtype, span.device = parse_dtype(dtype), torch.device(device)
    span.positions = family.position_cls(config).to(device)  # keep rope / alibi tables in fp32
    return span


def load_client(model_dir: str | Path, dtype: str = "float32", device: str | torch.device = "cpu"):
    """(config, family, client module) with embeddings, final norm and LM head."""
    model_dir = Path(model_dir)
    config = load_config(model_dir)
    family = family_of(config)
    tensors = read_tensors(_files_for(model_dir, family, None, client=True),
                           lambda k: k.startswith(tuple(p for p, _ in family.client_prefixes)))
    state = {}
    for key, value in tensors.items():
        for src, dst in family.client_prefixes:
            if key.startswith(src):
                state[dst + key[len(src):]] = value
    client = family.client_cls(config)
    missing, unexpected = client.load_state_dict(state, strict=False)
    tied = bool(config.tie_word_embeddings)
    if [m for m in missing if not (tied and m == "lm_head.weight")] or unexpected:
        raise ModelError(f"client weights do not match: missing {missing}, unexpected {unexpected}")
    return config, family, client.to(device=device, dtype=parse_dtype(dtype)).eval()
