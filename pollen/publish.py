"""Publish a model version: checkpoint → per-block shards → store → manifest → manifest CID.

    published = publish_checkpoint("path/to/checkpoint", store, name="SmolLM2-135M")
    published.manifest_cid          # the version's identity (same bytes → same CID: idempotent)
    version_id = register_version(registry, model_id, published)   # the chain step, when wired

The chain step is kept behind `register_version`, which takes any object with
`publish_version(model_id, manifest_cid, num_blocks, parent_version_id, tolerance_micros)`
(ModelVersionRegistry's signature) so the store side stays chain-agnostic.
Adapters (LoRA weights, trained prompts) publish as an adapter manifest tagged with the manifest
CID of their base version. `replicate` copies a version between stores (e.g. embedded → IPFS),
checking that every CID is unchanged.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pollen.errors import PollenError
from pollen.manifest import (AdapterManifest, FileRef, Manifest,
                             block_filename, load, parse, to_bytes)
from pollen.shards import CLIENT_SHARD, Split, split_checkpoint
from pollen.store import ContentStore, open_store
from pollen.store.errors import CidDisagreementError
from pollen.store.base import Progress
from pollen.store.progress import TextProgress

# Calibrated in benchmarks/judgment.py (table: benchmarks/results/judgment.md): per block, per
# token, on sketches, honest servers (fp32/bf16, threads, batch, KV cache vs replay) stay well
# under it and every cheat that saves compute or changes the model lands well above it.
DEFAULT_TOLERANCE = 0.15


class PublishError(PollenError):
    """Something to publish that cannot be published."""

    def __init__(self, problem: str):
        super().__init__(f"publish: {problem}")


class VersionRegistry(Protocol):
    """What the chain step needs: ModelVersionRegistry as `pollen.chain.Chain` exposes it."""

    def version_by_manifest(self, manifest_cid: str) -> int: ...

    def publish_version(self, model_id: int, manifest_cid: str, num_blocks: int,
                        parent_id: int, tolerance_micros: int) -> int: ...

    def publish_adapter(self, base_version_id: int, cid: str, name: str, tags: str) -> int: ...


@dataclass(frozen=True)
class Published:
    manifest_cid: str
    manifest: Manifest
    uploaded_bytes: int


def _add(store: ContentStore, path: Path, rel: str, progress: Progress | None) -> FileRef:
    added = store.add_file(path, progress=progress)
    store.pin(added.cid)
    return FileRef(path=rel, cid=added.cid, size=added.size)


def build_manifest(split: Split, refs: dict[str, FileRef], *, name: str, tolerance: float,
                   parent: str | None, notes: str, license: str) -> Manifest:
    blocks = [refs[block_filename(i)] for i in range(len(split.blocks))]
    tokenizer = [refs[p.name] for p in split.tokenizer]
    data = {"schema": "pollen.manifest/1", "name": name, "architecture": split.architecture,
            "model_type": split.model_type, "config": split.config, "num_blocks": len(blocks),
            "block_prefix": split.block_prefix, "dtype": split.dtype,
            "tolerance": {"metric": "block_token_relative_l2", "value": tolerance},
            "blocks": [b.model_dump() for b in blocks], "client": refs[CLIENT_SHARD].model_dump(),
            "tokenizer": [t.model_dump() for t in tokenizer], "parent": parent,
            "notes": notes, "license": license}
    return parse(data, where=f"for {name}")


def publish_checkpoint(checkpoint: str | Path, store: ContentStore, *, name: str | None = None,
                       tolerance: float = DEFAULT_TOLERANCE, parent: str | None = None,
                       notes: str = "", license: str = "", work_dir: str | Path | None = None,
                       progress: bool = False) -> Published:
    """Split `checkpoint` (a transformers folder), add every shard and the manifest to `store`.

    Idempotent: publishing the same checkpoint with the same metadata again yields the same
    manifest CID and stores nothing new. `parent` is the parent version's manifest CID.
    """
    checkpoint = Path(checkpoint)
    if parent is not None:
        load(store, parent)  # the parent must exist and be a valid manifest
    with tempfile.TemporaryDirectory(prefix="pollen-split-", dir=work_dir) as tmp:
        split = split_checkpoint(checkpoint, tmp)
        files = [*split.blocks, split.client, *split.tokenizer]
        refs = {}
        for path in files:
            rel = path.relative_to(split.folder).as_posix()
            refs[rel] = _add(store, path, rel, TextProgress(f"add {rel}") if progress else None)
        manifest = build_manifest(split, refs, name=name or checkpoint.name, tolerance=tolerance,
                                  parent=parent, notes=notes, license=license)
    added = store.add_bytes(to_bytes(manifest))
    store.pin(added.cid)
    return Published(added.cid, manifest, sum(r.size for r in refs.values()) + added.size)


def register_version(registry: VersionRegistry, model_id: int, published: Published,
                     parent_version_id: int = 0) -> int:
    """The chain step: record the version's manifest CID in ModelVersionRegistry and return
    its version id. Idempotent: a manifest CID already on chain returns its existing id."""
    if existing := registry.version_by_manifest(published.manifest_cid):
        return existing
    m = published.manifest
    return registry.publish_version(model_id, published.manifest_cid, m.num_blocks,
                                    parent_version_id, m.tolerance.micros)


def register_adapter(registry: VersionRegistry, base_version_id: int, adapter_cid: str,
                     manifest: AdapterManifest, tags: str = "") -> int:
    """The chain step for an adapter: tag its manifest CID with the base version id."""
    return registry.publish_adapter(base_version_id, adapter_cid, manifest.name, tags or manifest.kind)


def publish_adapter(folder: str | Path, store: ContentStore, base: str, *, kind: str,
                    name: str | None = None, notes: str = "", license: str = "") -> tuple[str, AdapterManifest]:
    """Publish every file of an adapter folder (e.g. PEFT's adapter_config.json +
    adapter_model.safetensors) as an adapter manifest tagged with `base` (a manifest CID)."""
    folder = Path(folder)
    load(store, base)  # the base version must exist and be valid
    paths = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not paths:
        raise PublishError(f"adapter folder {folder} has no files to publish")
    refs = [_add(store, p, p.relative_to(folder).as_posix(), None) for p in paths]
    config_path = folder / "adapter_config.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    data = {"schema": "pollen.adapter/1", "name": name or folder.name, "kind": kind, "base": base,
            "config": config, "files": [r.model_dump() for r in refs], "notes": notes,
            "license": license}
    manifest = parse(data, where=f"for adapter {folder.name}", adapter=True)
    added = store.add_bytes(to_bytes(manifest))
    store.pin(added.cid)
    return added.cid, manifest


def replicate(src: ContentStore, dst: ContentStore, manifest_cid: str,
              work_dir: str | Path | None = None) -> list[str]:
    """Copy a version (manifest + every file) from `src` to `dst`; every CID must be unchanged."""
    manifest = load(src, manifest_cid)
    refs = [*manifest.blocks, manifest.client, *manifest.tokenizer]
    with tempfile.TemporaryDirectory(prefix="pollen-replicate-", dir=work_dir) as tmp:
        for i, ref in enumerate(refs):
            _copy_one(src, dst, ref.cid, Path(tmp) / str(i))
        _copy_one(src, dst, manifest_cid, Path(tmp) / "manifest")
    return [r.cid for r in refs] + [manifest_cid]


def _copy_one(src: ContentStore, dst: ContentStore, cid: str, tmp: Path) -> None:
    added = dst.add_file(src.fetch(cid, tmp))
    if added.cid != cid:
        raise CidDisagreementError(f"{dst.name} store", cid, added.cid)
    dst.pin(cid)
    tmp.unlink()


def main(argv: list[str] | None = None) -> int:
    """`python -m pollen.publish CHECKPOINT [--store SPEC]`: print the version's manifest CID."""
    ap = argparse.ArgumentParser(prog="python -m pollen.publish", description=main.__doc__)
    ap.add_argument("checkpoint", help="transformers checkpoint folder (safetensors)")
    ap.add_argument("--store", default=None, help="http://host:port (IPFS node) or a folder "
                    "(embedded store; default .cache/store)")
    ap.add_argument("--name")
    ap.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE)
    ap.add_argument("--parent", help="parent version's manifest CID")
    ap.add_argument("--notes", default="")
    ap.add_argument("--license", default="")
    args = ap.parse_args(argv)
    try:
        published = publish_checkpoint(args.checkpoint, open_store(args.store), name=args.name,
                                       tolerance=args.tolerance, parent=args.parent,
                                       notes=args.notes, license=args.license, progress=True)
    except PollenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(published.manifest_cid)
    return 0


if __name__ == "__main__":
    sys.exit(main())
