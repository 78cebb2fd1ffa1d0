"""The embedded content store: a folder of blobs named by their Kubo CIDv1, no daemon needed.

Content added here gets exactly the CID a Kubo node gives the same bytes (`ipfs add
--cid-version=1 --raw-leaves`), so it can move to and from IPFS without changing identity.
Blobs are whole files under `<root>/blobs/<cid>`; every read re-hashes them.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from pollen.store.base import Added, ContentStore, Progress, commit_file, temp_beside
from pollen.store.cid import READ_SIZE, CidHasher, parse_cid
from pollen.store.errors import ContentMismatchError, ContentNotFoundError, StorePathError


def copy_hashing(src: BinaryIO, dst: BinaryIO, like: str | None, total: int | None,
                 progress: Progress | None) -> tuple[str, int]:
    """Copy `src` to `dst` while computing the CID; reports progress per MiB."""
    hasher = CidHasher(like)
    while chunk := src.read(READ_SIZE):
        hasher.update(chunk)
        dst.write(chunk)
        if progress is not None:
            progress(hasher.size, total)
    if progress is not None:
        progress(hasher.size, total)
    return hasher.finalize(), hasher.size


class LocalStore(ContentStore):
    """Embedded store rooted at a folder (created on first use)."""

    name = "local"

    def __init__(self, root: str | Path):
        super().__init__()
        self.root = Path(root).expanduser().resolve()
        self.blobs = self.root / "blobs"
        try:
            self.blobs.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorePathError(self.root, f"cannot create the local store ({exc})") from exc

    def path_of(self, cid: str) -> Path:
        return self.blobs / parse_cid(cid).text

    def has(self, cid: str) -> bool:
        return self.path_of(cid).is_file()

    def pin(self, cid: str) -> None:
        if not self.has(cid):
            raise ContentNotFoundError(cid, f"local store {self.root}")

    def describe(self) -> dict:
        return {"kind": "local", "root": str(self.root)}

    def add_file(self, path: str | Path, progress: Progress | None = None) -> Added:
        path = Path(path)
        if not path.is_file():
            raise StorePathError(path, "cannot add: not a file")
        tmp = temp_beside(self.blobs / "incoming")
        try:
            with open(path, "rb") as src, open(tmp, "wb") as dst:
                cid, size = copy_hashing(src, dst, None, path.stat().st_size, progress)
            if self.has(cid):
                tmp.unlink()
            else:
                commit_file(tmp, self.blobs / cid)
        finally:
            tmp.unlink(missing_ok=True)
        self.stats.bytes_written += size
        self.stats.cids_written.append(cid)
        return Added(cid, size)

    def fetch(self, cid: str, dest: str | Path, progress: Progress | None = None,
              size: int | None = None) -> Path:
        source, dest = self.path_of(cid), Path(dest)
        if not source.is_file():
            raise ContentNotFoundError(cid, f"local store {self.root}")
        tmp = temp_beside(dest)
        try:
            with open(source, "rb") as src, open(tmp, "wb") as dst:
                actual, got = copy_hashing(src, dst, cid, size or source.stat().st_size, progress)
            self.stats.bytes_read += got
            self.stats.cids_read.append(cid)
            if actual != cid:
                raise ContentMismatchError(cid, actual, f"local store {self.root}")
            return commit_file(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

    def remove(self, cid: str) -> None:
        """Delete a blob (garbage collection is the caller's decision)."""
        self.path_of(cid).unlink(missing_ok=True)

