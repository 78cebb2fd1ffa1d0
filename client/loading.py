"""What `from_pretrained` loads from, by what a user knows of the model:

  * a local folder: a transformers checkpoint or a version folder (config, client parts, tokenizer);
  * a manifest CID: "bafy..." / "Qm..." or "ipfs://CID": the manifest is fetched from a content
    store and verified against its CID, then the client parts and tokenizer (and the blocks the
    client runs itself, `local_blocks=`) are fetched into a cache folder, each shard verified;
  * an on-chain version: "pollen://<network>/<version-id>" (e.g. "pollen://anvil/1"): the
    ModelVersionRegistry of the network's deployment (deployments/<network>.json, or the
    `deployment=` given) names the manifest CID; servers come from the ServerRegistry.

    source = open_source("pollen://anvil/1", store=".cache/store", deployment="deployments/demo.json")
    source.folder, source.chain, source.version_id
    source.fetch_blocks(0, 1)   # the version's block 0 into the same folder (local blocks)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from client.errors import ClientError

log = logging.getLogger("pollen.client")

DEFAULT_CACHE = Path(".cache") / "client"
SCHEME = "pollen://"


class ModelSourceError(ClientError):
    """A model name that is no folder, no CID and no pollen:// version, or one that cannot be fetched."""


@dataclass
class Source:
    folder: Path  # config.json, client parts, tokenizer (and any local blocks fetched)
    manifest_cid: str | None = None  # None: a local folder
    manifest: object | None = None  # pollen.manifest.Manifest when fetched by CID
    store: object | None = None
    chain: object | None = None  # pollen.chain.Chain for pollen:// versions
    version_id: int | None = None
    cache_dir: Path = DEFAULT_CACHE
    progress: bool = True

    def fetch_blocks(self, first: int, last: int) -> Path:
        """Blocks [first, last) of a fetched version into `folder` (a local folder has them already)."""
        if self.manifest is not None and last > first:
            fetch_verified(self.store, self.manifest, self.manifest.blocks[first:last], self.cache_dir,
                           self.progress)
        return self.folder


def parse_version_url(text: str) -> tuple[str, int]:
    """"pollen://<network>/<version-id>" -> (network, version id)."""
    network, _, version = text.removeprefix(SCHEME).strip("/").partition("/")
    if not network or not version.isdigit() or int(version) <= 0:
        raise ModelSourceError(f"{text!r}: expected pollen://<network>/<version-id>, e.g. pollen://anvil/1")
    return network, int(version)


def as_cid(text: str) -> str | None:
    """The CID in "ipfs://CID", "/ipfs/CID" or a bare CID; None when the text is none of those."""
    from pollen.store import CidError, parse_cid

    bare = text.removeprefix("ipfs://").removeprefix("/ipfs/").strip("/")
    try:
        return parse_cid(bare).text
    except CidError:
        if text.startswith(("ipfs://", "/ipfs/")):
            raise ModelSourceError(f"{text!r}: {bare!r} is not a valid CID") from None
        return None


def open_source(name_or_path, store=None, chain=None, deployment=None, rpc: str | None = None,
                cache_dir=None, progress: bool = True) -> Source:
    """Resolve a folder / CID / pollen:// name; fetch the client parts of a remote one."""
    text = str(name_or_path)
    cache = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE
    if Path(text).is_dir():
        return Source(Path(text))
    if text.startswith(SCHEME):
        network, version_id = parse_version_url(text)
        chain = chain if chain is not None else connect(network, deployment, rpc)
        cid = _version_cid(chain, version_id)
        return _fetched(cid, _store(store), cache, progress, chain=chain, version_id=version_id)
    cid = as_cid(text)
    if cid is None:
        raise ModelSourceError(f"model {text!r} is not a folder, a manifest CID (bafy..., ipfs://CID) nor "
                               f"an on-chain version (pollen://<network>/<version-id>)")
    return _fetched(cid, _store(store), cache, progress)


def connect(network: str, deployment=None, rpc: str | None = None):
    """A read-only Chain on `network`: `deployment` (a path or Deployment) or deployments/<network>.json."""
    from pollen.chain import Chain, Deployment

    if deployment is None:
        deployment = Path("deployments") / f"{network}.json"
        if not deployment.is_file():
            raise ModelSourceError(f"no deployment file {deployment} for network {network!r}: pass deployment= "
                                   f"(--deployment) naming where the contracts live")
    if not isinstance(deployment, Deployment):
        deployment = Deployment.load(deployment)
    if deployment.network != network:
        raise ModelSourceError(f"pollen://{network}/...: the deployment given is for network "
                               f"{deployment.network!r}")
    return Chain.connect(deployment, rpc=rpc)


def _version_cid(chain, version_id: int) -> str:
    from pollen.chain import ChainError
    from pollen.shards import manifest_cid_of

    try:
        return manifest_cid_of(chain, version_id)[0]
    except ChainError as exc:
        raise ModelSourceError(f"version {version_id} on {chain.deployment.network}: {exc}") from exc


def _store(store):
    from pollen.store import ContentStore, open_store

    return store if isinstance(store, ContentStore) else open_store(store)


def _fetched(cid: str, store, cache: Path, progress: bool, **chain_fields) -> Source:
    from pollen.errors import PollenError
    from pollen.manifest import load

    try:
        manifest = load(store, cid)
    except PollenError as exc:
        raise ModelSourceError(f"manifest {cid}: {exc}") from exc
    folder = fetch_verified(store, manifest, [manifest.client, *manifest.tokenizer], cache, progress)
    return Source(folder, cid, manifest, store, cache_dir=cache, progress=progress, **chain_fields)


def fetch_verified(store, manifest, refs, cache: Path, progress: bool = True) -> Path:
    """Each FileRef of the manifest into the version's folder under `cache`, verified against its
    CID and size (pollen.shards), with a progress bar per shard; returns the folder."""
    from tqdm.auto import tqdm

    from pollen.errors import PollenError
    from pollen.shards import fetch_files

    folder = None
    for ref in refs:
        with tqdm(total=ref.size, desc=ref.path, unit="B", unit_scale=True, disable=not progress,
                  leave=False) as bar:
            try:
                _, _, folder, done = fetch_files(store, manifest, cache, lambda m, ref=ref: [ref],
                                                 lambda got, _total, bar=bar: bar.update(got - bar.n))
            except PollenError as exc:
                raise ModelSourceError(f"{ref.path} ({ref.cid}): {exc}") from exc
        log.info("%s: %d bytes, %s", ref.path, ref.size, "fetched and verified" if done[ref.path][1] else "cached")
    return folder
