"""The content-store interface both backends implement, with byte counters and progress."""

from __future__ import annotations

import abc
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from pollen.store.cid import parse_cid

# progress(done_bytes, total_bytes or None) — called as bytes move, and once at the end.
Progress = Callable[[int, "int | None"], None]


@dataclass
class Stats:
    """What crossed the store's boundary: bytes and CIDs read (fetched) and written (added)."""

    bytes_read: int = 0
    bytes_written: int = 0
    cids_read: list[str] = field(default_factory=list)
    cids_written: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Added:
    cid: str
    size: int


class ContentStore(abc.ABC):
    """Content addressed by Kubo-compatible CIDv1 (raw leaves); every read is verified."""

    name = "store"

    def __init__(self) -> None:
        self.stats = Stats()

    @abc.abstractmethod
    def add_file(self, path: str | Path, progress: Progress | None = None) -> Added:
        """Store a file; returns its CID and size (the same CID Kubo gives these bytes)."""

    @abc.abstractmethod
    def fetch(self, cid: str, dest: str | Path, progress: Progress | None = None,
              size: int | None = None) -> Path:
        """Write the content of `cid` to `dest` only after verifying it; returns `dest`."""

    @abc.abstractmethod
    def has(self, cid: str) -> bool:
        """Whether the content is held (locally for the embedded store, pinned for a node)."""

    @abc.abstractmethod
    def pin(self, cid: str) -> None:
        """Keep the content (no-op for the embedded store, which keeps everything)."""

    @abc.abstractmethod
    def describe(self) -> dict:
        """Identity of the backend (kind, location, node id/version for a node)."""

    def add_bytes(self, data: bytes) -> Added:
        with tempfile.TemporaryDirectory(prefix="pollen-add-") as tmp:
            path = Path(tmp) / "blob"
            path.write_bytes(data)
            return self.add_file(path)

    def cat(self, cid: str, size: int | None = None) -> bytes:
        """The verified content of `cid` in memory (for small objects such as manifests)."""
        parse_cid(cid)
        with tempfile.TemporaryDirectory(prefix="pollen-cat-") as tmp:
            return self.fetch(cid, Path(tmp) / "blob", size=size).read_bytes()


def commit_file(tmp: Path, dest: Path) -> Path:
    """Move a verified temp file into place atomically (same filesystem)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, dest)
    return dest


def temp_beside(dest: Path) -> Path:
    """A fresh temp path in `dest`'s folder, so the final rename is atomic."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    return Path(name)
