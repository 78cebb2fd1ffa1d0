"""Per-block safetensors shards: the storage format of a model version.

`split_checkpoint` turns a transformers checkpoint folder into one shard per transformer block
plus a client-parts shard (everything that is not a block: embeddings, final norm, LM head),
keeping the ORIGINAL parameter names (`model.layers.{i}.…` for Llama, `transformer.h.{i}.…` for
BLOOM), so a loader reads a folder of shards by name. The folder layout is the "Pollen split
dir" that `pollen.model.loading` understands:

    config.json  pollen_split.json  client.safetensors  blocks/block_00000.safetensors ...

`fetch_span` builds such a folder for the blocks [first, last) of a published version: it
fetches only those shards (and the client parts / tokenizer only when asked), verifies each
against its CID, caches blobs on disk by CID, re-fetches a cached file that no longer matches,
and never leaves unverified bytes in the cache.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from pollen import dtypes
from pollen.errors import PollenError
from pollen.manifest import FileRef, Manifest, block_filename, load, to_bytes
from pollen.store.base import ContentStore, Progress
from pollen.store.cid import cid_of_bytes, cid_of_file, parse_cid

log = logging.getLogger(__name__)

SPLIT_INDEX = "pollen_split.json"
CLIENT_SHARD = "client.safetensors"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "tokenizer.model", "added_tokens.json", "vocab.json", "merges.txt",
                   "chat_template.jinja", "generation_config.json")
_LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers")
_INDEXED = re.compile(r"^(.*?\.)(\d+)\.")


class ShardError(PollenError):
    """A checkpoint that cannot be split, or a span that cannot be fetched."""

    def __init__(self, problem: str):
        super().__init__(f"shards: {problem}")


@dataclass
class Split:
    """The result of splitting a checkpoint into `folder`."""

    folder: Path
    config: dict
    architecture: str
    model_type: str
    block_prefix: str
    dtype: str
    blocks: list[Path]
    client: Path
    tokenizer: list[Path]


# -- splitting -----------------------------------------------------------------------------
def read_config(folder: Path) -> dict:
    path = folder / "config.json"
    if not path.is_file():
        raise ShardError(f"{folder} has no config.json (not a transformers checkpoint folder)")
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise ShardError(f"{path} is not valid JSON ({exc})") from None


def num_blocks_of(config: dict) -> int:
    for key in _LAYER_KEYS:
        if isinstance(config.get(key), int) and config[key] > 0:
            return config[key]
    raise ShardError(f"config.json names no layer count (looked for {', '.join(_LAYER_KEYS)})")


def weight_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [folder / name for name in names]
    single = folder / "model.safetensors"
    if single.is_file():
        return [single]
    raise ShardError(f"{folder} has no model.safetensors or model.safetensors.index.json "
                     "(only safetensors checkpoints can be published)")


def block_prefix_of(names: list[str], n: int) -> str:
    """The name prefix under which exactly blocks 0..n-1 live (e.g. 'model.layers.')."""
    indices: dict[str, set[int]] = defaultdict(set)
    for name in names:
        if match := _INDEXED.match(name):
            indices[match.group(1)].add(int(match.group(2)))
    fits = [p for p, found in indices.items() if found == set(range(n))]
    if len(fits) != 1:
        seen = {p: len(v) for p, v in indices.items()}
        raise ShardError(f"cannot find the {n} transformer blocks among the parameter names "
                         f"(indexed prefixes seen: {seen or 'none'})")
    return fits[0]


def _open_all(files: list[Path]):
    from safetensors import safe_open

    handles, where = [], {}
    for path in files:
        handle = safe_open(str(path), framework="pt")
        handles.append(handle)
        for key in handle.keys():
            where[key] = handle
    return handles, where


def _save(where: dict, keys: list[str], dest: Path) -> None:
    from safetensors.torch import save_file

    dest.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: where[k].get_tensor(k).contiguous() for k in keys}
    save_file(tensors, str(dest), metadata={"format": "pt"})


def _dtype_of(files: list[Path], block_keys: set[str]) -> str:
    counts: Counter = Counter()
    for path in files:
        with open(path, "rb") as fh:
            header = json.loads(fh.read(int.from_bytes(fh.read(8), "little")))
        for key, info in header.items():
            if key in block_keys:
                counts[info["dtype"]] += 1
    try:
        return dtypes.from_safetensors(counts.most_common(1)[0][0])
    except ValueError as exc:
        raise ShardError(f"block {exc}") from None


def split_checkpoint(checkpoint: str | Path, out_dir: str | Path) -> Split:
    """Write per-block shards + client shard + config/tokenizer files into `out_dir`."""
    src, out = Path(checkpoint), Path(out_dir)
    config = read_config(src)
    n, files = num_blocks_of(config), weight_files(src)
    _, where = _open_all(files)
    prefix = block_prefix_of(list(where), n)
    per_block: dict[int, list[str]] = {i: sorted(k for k in where if k.startswith(f"{prefix}{i}."))
                                       for i in range(n)}
    block_keys = {k for keys in per_block.values() for k in keys}
    blocks = []
    for i, keys in per_block.items():
        _save(where, keys, out / block_filename(i))
        blocks.append(out / block_filename(i))
    _save(where, sorted(set(where) - block_keys), out / CLIENT_SHARD)
    tokenizer = [_copy(src / name, out / name) for name in TOKENIZER_FILES if (src / name).is_file()]
    write_layout(out, config, n)
    archs = config.get("architectures") or ["unknown"]
    return Split(out, config, archs[0], str(config.get("model_type", "unknown")), prefix,
                 _dtype_of(files, block_keys), blocks, out / CLIENT_SHARD, tokenizer)


def _copy(src: Path, dest: Path) -> Path:
    dest.write_bytes(src.read_bytes())
    return dest


def write_layout(folder: Path, config: dict, n: int) -> None:
    """config.json + the split index that pollen.model.loading reads."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    index = {"family": config.get("model_type"), "num_blocks": n,
             "blocks": [block_filename(i) for i in range(n)], "client": CLIENT_SHARD}
    (folder / SPLIT_INDEX).write_text(json.dumps(index, indent=1))


# -- fetching ------------------------------------------------------------------------------
@dataclass
class SpanFiles:
    """A folder holding blocks [first, last) of a version (plus client parts if asked)."""

    folder: Path
    manifest_cid: str
    first: int
    last: int
    blocks: dict[int, Path]
    client: Path | None = None
    tokenizer: list[Path] = field(default_factory=list)
    fetched_bytes: int = 0
    reused_bytes: int = 0


class BlobCache:
    """Verified blobs under `<root>/blobs/<cid>`; anything that fails its CID is removed."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.blobs = self.root / "blobs"
        self.blobs.mkdir(parents=True, exist_ok=True)

    def verified(self, ref: FileRef) -> Path | None:
        path = self.blobs / ref.cid
        if not path.is_file():
            return None
        if path.stat().st_size == ref.size and cid_of_file(path, like=ref.cid)[0] == ref.cid:
            return path
        log.warning("cached %s (%s) does not match its CID: removing and re-fetching", ref.path, ref.cid)
        path.unlink(missing_ok=True)
        return None

    def get(self, store: ContentStore, ref: FileRef, progress: Progress | None) -> tuple[Path, bool]:
        """(path, fetched?) — the cached blob, fetched and verified first if needed."""
        if (path := self.verified(ref)) is not None:
            return path, False
        path = store.fetch(ref.cid, self.blobs / ref.cid, progress=progress, size=ref.size)
        if (actual := path.stat().st_size) != ref.size:  # right bytes, but the manifest lies
            path.unlink(missing_ok=True)
            raise ShardError(f"{ref.path} ({ref.cid}) is {actual} bytes, the manifest says {ref.size}")
        return path, True


def _link(target: Path, link: Path) -> None:
    """Atomically point `link` at `target` (relative symlink)."""
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(os.path.relpath(target, link.parent))
    os.replace(tmp, link)


def resolve(store: ContentStore, manifest: Manifest | str) -> tuple[Manifest, str]:
    """(manifest, its CID) from a manifest object or a manifest CID (fetched and verified)."""
    if isinstance(manifest, Manifest):
        return manifest, cid_of_bytes(to_bytes(manifest))
    return load(store, manifest), parse_cid(manifest).text


class _Overall:
    """Turns per-file progress into progress over all files of a fetch."""

    def __init__(self, total: int, progress: Progress | None):
        self.total, self.progress, self.base = total, progress, 0

    def file(self) -> Progress | None:
        if self.progress is None:
            return None
        base = self.base
        return lambda done, _total: self.progress(base + done, self.total)

    def advance(self, size: int) -> None:
        self.base += size


def fetch_files(store: ContentStore, manifest: Manifest | str, cache_dir: str | Path,
                refs_of, progress: Progress | None = None) -> tuple[Manifest, str, Path, dict]:
    """Fetch the FileRefs `refs_of(manifest)` picks into the version's folder under cache_dir."""
    manifest, cid = resolve(store, manifest)
    cache = BlobCache(cache_dir)
    folder = cache.root / "versions" / cid
    write_layout(folder, manifest.config, manifest.num_blocks)
    refs = refs_of(manifest)
    overall, done = _Overall(sum(r.size for r in refs), progress), {}
    for ref in refs:
        blob, fetched = cache.get(store, ref, overall.file())
        overall.advance(ref.size)
        _link(blob, folder / ref.path)
        done[ref.path] = (folder / ref.path, fetched, ref.size)
    return manifest, cid, folder, done


def _span_result(cid, folder, first, last, done) -> SpanFiles:
    span = SpanFiles(folder, cid, first, last, blocks={})
    by_path = {block_filename(i): i for i in range(first, last)}
    for rel, (path, fetched, size) in done.items():
        if rel in by_path:
            span.blocks[by_path[rel]] = path
        elif rel == CLIENT_SHARD:
            span.client = path
        else:
            span.tokenizer.append(path)
        span.fetched_bytes += size if fetched else 0
        span.reused_bytes += 0 if fetched else size
    return span


def fetch_span(store: ContentStore, manifest: Manifest | str, first: int, last: int,
               cache_dir: str | Path, progress: Progress | None = None,
               client: bool = False) -> SpanFiles:
    """Blocks [first, last) (half-open, as servers host them) of a version, verified and cached.

    `manifest` is a Manifest or its CID. Fetches only those shards (plus the client parts and
    tokenizer when `client=True`); config.json comes from the verified manifest itself.
    """
    def pick(m: Manifest) -> list[FileRef]:
        if not (isinstance(first, int) and isinstance(last, int) and 0 <= first < last <= m.num_blocks):
            raise ShardError(f"span [{first}, {last}) is outside the version's {m.num_blocks} blocks")
        return m.blocks[first:last] + ([m.client, *m.tokenizer] if client else [])
    _, cid, folder, done = fetch_files(store, manifest, cache_dir, pick, progress)
    return _span_result(cid, folder, first, last, done)


class VersionError(PollenError):
    """A version id the chain does not offer for serving (absent, deprecated, inconsistent)."""

    def __init__(self, version_id: int, problem: str):
        self.version_id = version_id
        super().__init__(f"model version {version_id}: {problem}")


def manifest_cid_of(registry, version_id: int, allow_deprecated: bool = False) -> tuple[str, int]:
    """(manifest CID, num_blocks) of an on-chain version. `registry.version(id)` is
    `pollen.chain.Chain.version` (it raises for an absent id); deprecated versions are refused."""
    info = registry.version(version_id)
    if info["deprecated"] and not allow_deprecated:
        successor = info.get("superseded_by") or 0
        hint = f", superseded by version {successor}" if successor else ""
        raise VersionError(version_id, f"is deprecated{hint}")
    return parse_cid(info["manifest_cid"]).text, int(info["num_blocks"])


def fetch_version_span(store: ContentStore, registry, version_id: int, first: int, last: int,
                       cache_dir: str | Path, progress: Progress | None = None,
                       client: bool = False) -> SpanFiles:
    """`fetch_span` for a server given only a version id: chain → manifest CID → shards."""
    cid, num_blocks = manifest_cid_of(registry, version_id)
    manifest = load(store, cid)
    if manifest.num_blocks != num_blocks:
        raise VersionError(version_id, f"chain says {num_blocks} blocks, manifest {cid} has "
                           f"{manifest.num_blocks}")
    return fetch_span(store, manifest, first, last, cache_dir, progress, client)


def fetch_client(store: ContentStore, manifest: Manifest | str, cache_dir: str | Path,
                 progress: Progress | None = None) -> SpanFiles:
    """Only the client parts (embeddings, final norm, LM head) and tokenizer of a version."""
    _, cid, folder, done = fetch_files(store, manifest, cache_dir,
                                       lambda m: [m.client, *m.tokenizer], progress)
    return _span_result(cid, folder, 0, 0, done)
