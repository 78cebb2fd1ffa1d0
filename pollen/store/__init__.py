"""Pollen's content store: content addressed by Kubo-compatible CIDs, verified on every read.

Two backends behind one interface (`ContentStore`):
  * `LocalStore(root)` — embedded, no daemon; the default for a first run and the demo;
  * `KuboStore(url)` — a real IPFS node over the Kubo RPC API (Go Kubo, or js-ipfs here).
Both give the same bytes the same CIDv1 (raw leaves, 256 KiB chunks, 174-link balanced DAG).
`open_store(spec)` picks one from a string: an http(s) URL → node, anything else → folder.
"""

from __future__ import annotations

from pathlib import Path

from pollen.store.base import Added, ContentStore, Progress, Stats
from pollen.store.cid import Cid, CidHasher, cid_of_bytes, cid_of_file, parse_cid
from pollen.store.errors import (CidDisagreementError, CidError, ContentMismatchError,
                                 ContentNotFoundError, NodeAnswerError, NodeProcessError,
                                 StoreError, StorePathError, StoreUnavailableError)
from pollen.store.kubo import KuboStore
from pollen.store.local import LocalStore

DEFAULT_LOCAL_ROOT = Path(".cache") / "store"


def open_store(spec: str | Path | None = None) -> ContentStore:
    """`http://host:port` → KuboStore; a path (default .cache/store) → LocalStore."""
    text = str(spec) if spec is not None else str(DEFAULT_LOCAL_ROOT)
    if text.startswith(("http://", "https://")):
        return KuboStore(text)
    return LocalStore(text)


__all__ = ["Added", "Cid", "CidDisagreementError", "CidError", "NodeAnswerError", "StorePathError", "CidHasher", "ContentMismatchError",
           "ContentNotFoundError", "ContentStore", "KuboStore", "LocalStore", "NodeProcessError",
           "Progress", "Stats", "StoreError", "StoreUnavailableError", "cid_of_bytes",
           "cid_of_file", "open_store", "parse_cid"]
