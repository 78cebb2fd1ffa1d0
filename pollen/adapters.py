"""Published LoRA adapters served by name: per-block shards under an adapter manifest, by CID.

    cid, manifest = publish_lora("my-lora", store, base=version_manifest_cid)   # save_pretrained dir
    lora = load_lora(store, cid, first, last)    # a server: only its blocks' shards, verified by CID

Layout published (pollen.adapter/1 manifest, kind "lora", tagged with the base version's
manifest CID): `adapter_config.json` (peft's, as saved) plus one safetensors shard per block,
`blocks/block_{i:05d}.safetensors`, holding "{target}.lora_A" (r, in) and "{target}.lora_B"
(out, r) for every target module. Every byte read back is verified against its CID by the
store, so a tampered shard is refused (ContentMismatchError).
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import torch

from pollen.errors import PollenError
from pollen.manifest import AdapterManifest, load
from pollen.model.lora import Lora

SHARD = "blocks/block_{:05d}.safetensors"
PEFT_PREFIX = "base_model.model."


class AdapterError(PollenError):
    """An adapter that cannot be published or does not fit where it is loaded."""

    def __init__(self, problem: str):
        super().__init__(f"adapter: {problem}")


def split_lora(folder: str | Path, block_prefix: str, num_blocks: int, out: Path) -> dict:
    """Write the per-block shards of a peft LoRA folder under `out`; returns its adapter config."""
    from safetensors.torch import load_file, save_file

    folder = Path(folder)
    try:
        config = json.loads((folder / "adapter_config.json").read_text())
        tensors = load_file(str(folder / "adapter_model.safetensors"))
    except (OSError, ValueError) as exc:
        raise AdapterError(f"{folder} is not a saved LoRA adapter ({exc})") from exc
    if config.get("peft_type") != "LORA":
        raise AdapterError(f"{folder}: peft_type {config.get('peft_type')!r}, only LORA publishes as block shards")
    key = re.compile(rf"^{re.escape(PEFT_PREFIX + block_prefix)}(\d+)\.(?:.+\.)?([^.]+)\.lora_([AB])\.weight$")
    per_block: dict[int, dict[str, torch.Tensor]] = {}
    for name, t in tensors.items():
        m = key.match(name)
        if m is None:
            raise AdapterError(f"{folder}: tensor {name!r} is not a LoRA weight of a block "
                               f"({PEFT_PREFIX}{block_prefix}<i>.<module>.lora_A/B.weight); heads do not publish")
        i = int(m.group(1))
        if not 0 <= i < num_blocks:
            raise AdapterError(f"{folder}: {name} names block {i}, the base version has {num_blocks}")
        per_block.setdefault(i, {})[f"{m.group(2)}.lora_{m.group(3)}"] = t.contiguous()
    if sorted(per_block) != list(range(num_blocks)):
        raise AdapterError(f"{folder}: LoRA weights for blocks {sorted(per_block)}, the base version has {num_blocks}")
    (out / "blocks").mkdir(parents=True)
    for i, shard in per_block.items():
        save_file(shard, str(out / SHARD.format(i)), metadata={"format": "pt"})
    (out / "adapter_config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    return config


def publish_lora(folder: str | Path, store, base: str, *, name: str | None = None, notes: str = "",
                 license: str = "") -> tuple[str, AdapterManifest]:
    """Publish a peft LoRA folder (save_pretrained) as per-block shards tagged with `base`."""
    from pollen.publish import publish_adapter

    manifest = load(store, base)
    with tempfile.TemporaryDirectory(prefix="pollen-lora-") as tmp:
        split_lora(folder, manifest.block_prefix, manifest.num_blocks, Path(tmp))
        return publish_adapter(tmp, store, base, kind="lora", name=name or Path(folder).name, notes=notes,
                               license=license)


def load_lora(store, cid: str, first: int, last: int, base: str | None = None) -> Lora:
    """The LoRA weights of blocks [first, last) of the adapter `cid`, fetched and verified by CID.
    `base`: the manifest CID of the version the caller serves (refused if the adapter is for another)."""
    from safetensors.torch import load

    manifest = load_manifest(store, cid)
    if base is not None and manifest.base != base:
        raise AdapterError(f"{cid} ({manifest.name}) is for base version {manifest.base}, this one is {base}")
    cfg = manifest.config
    try:
        rank, alpha, targets = int(cfg["r"]), float(cfg["lora_alpha"]), tuple(cfg["target_modules"])
    except (KeyError, TypeError, ValueError) as exc:
        raise AdapterError(f"{cid}: adapter_config lacks r / lora_alpha / target_modules ({exc})") from exc
    files = {f.path: f for f in manifest.files}
    a, b = {t: [] for t in targets}, {t: [] for t in targets}
    for i in range(first, last):
        ref = files.get(SHARD.format(i))
        if ref is None:
            raise AdapterError(f"{cid} has no shard for block {i}")
        shard = load(store.cat(ref.cid, ref.size))  # verified against the shard's CID
        for t in targets:
            if f"{t}.lora_A" not in shard or f"{t}.lora_B" not in shard:
                raise AdapterError(f"{cid}: block {i}'s shard lacks {t}.lora_A / {t}.lora_B")
            a[t].append(shard[f"{t}.lora_A"])
            b[t].append(shard[f"{t}.lora_B"])
    try:
        return Lora(rank, alpha, targets, tuple(torch.stack(a[t]) for t in targets),
                    tuple(torch.stack(b[t]) for t in targets))
    except RuntimeError as exc:
        raise AdapterError(f"{cid}: block shards of different shapes ({exc})") from exc


def load_manifest(store, cid: str) -> AdapterManifest:
    manifest = load(store, cid, adapter=True)
    if manifest.kind != "lora":
        raise AdapterError(f"{cid} is a {manifest.kind!r} adapter, not a LoRA")
    return manifest
