"""Content store backed by a real IPFS node through the Kubo RPC API (plain httpx).

Why httpx and not ipfshttpclient: ipfshttpclient 0.7's `connect()` refuses every daemon since
Kubo 0.8 and the project is unmaintained since 2021; aioipfs pins an old aiohttp. The RPC is a
handful of POST endpoints (`add`, `cat`, `pin/add`, `pin/ls`, `id`), which httpx streams well.
Works against Go Kubo and js-ipfs alike. Every add is checked against the locally computed CID
and every cat is re-hashed before the file is committed.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from pollen.retry import retry
from pollen.store.base import Added, ContentStore, Progress, commit_file, temp_beside
from pollen.store.cid import CidHasher, cid_of_file, parse_cid
from pollen.store.errors import (CidDisagreementError, ContentMismatchError,
                                 ContentNotFoundError, NodeAnswerError, StoreError,
                                 StorePathError, StoreUnavailableError)

ADD_PARAMS = {"cid-version": "1", "raw-leaves": "true", "cid-base": "base32", "pin": "true",
              "progress": "false"}
STREAM_CHUNK = 1 << 20
_RETRYABLE = (httpx.TransportError,)


class _ProgressReader:
    """File wrapper that reports bytes as httpx reads them for the upload."""

    def __init__(self, handle, total: int, progress: Progress | None):
        self.handle, self.total, self.progress, self.done = handle, total, progress, 0

    def fileno(self) -> int:  # lets httpx compute Content-Length
        return self.handle.fileno()

    def read(self, size: int = -1) -> bytes:
        chunk = self.handle.read(size)
        self.done += len(chunk)
        if self.progress is not None:
            self.progress(self.done, self.total)
        return chunk


class KuboStore(ContentStore):
    """A Kubo-RPC node at `url` (e.g. http://127.0.0.1:5001)."""

    name = "kubo"

    def __init__(self, url: str = "http://127.0.0.1:5001", timeout: float = 60.0,
                 find_timeout: float = 30.0, attempts: int = 3):
        super().__init__()
        self.url = url.rstrip("/")
        self.find_timeout, self.attempts = find_timeout, attempts
        self.client = httpx.Client(base_url=f"{self.url}/api/v0",
                                   timeout=httpx.Timeout(timeout, connect=5.0))

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> "KuboStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- transport -------------------------------------------------------------------------
    def _retrying(self, call):
        try:
            return retry(call, retry_on=_RETRYABLE, attempts=self.attempts, base_delay=0.2)
        except httpx.TransportError as exc:
            raise StoreUnavailableError(self.url, f"{type(exc).__name__}: {exc}") from exc

    def _error(self, resp: httpx.Response, cid: str | None = None) -> StoreError:
        try:
            message = json.loads(resp.read()).get("Message", "")
        except (ValueError, AttributeError):
            message = resp.text[:200]
        lowered = message.lower()
        if cid and any(s in lowered for s in ("not found", "timed out", "no link", "not pinned")):
            return ContentNotFoundError(cid, f"IPFS node {self.url}", message)
        return NodeAnswerError(self.url, f"HTTP {resp.status_code}: {message}")

    def _post(self, endpoint: str, cid: str | None = None, **kwargs) -> httpx.Response:
        def call() -> httpx.Response:
            resp = self.client.post(endpoint, **kwargs)
            if resp.status_code != 200:
                raise self._error(resp, cid)
            return resp
        return self._retrying(call)

    # -- interface ---------------------------------------------------------------------------
    def describe(self) -> dict:
        info = self._post("id").json()
        return {"kind": "kubo", "url": self.url, "id": info.get("ID"),
                "agent": info.get("AgentVersion")}

    def add_file(self, path: str | Path, progress: Progress | None = None) -> Added:
        path = Path(path)
        if not path.is_file():
            raise StorePathError(path, "cannot add: not a file")
        expected, size = cid_of_file(path)

        def upload() -> httpx.Response:
            with open(path, "rb") as handle:
                body = _ProgressReader(handle, size, progress)
                files = {"file": (path.name, body, "application/octet-stream")}
                return self._post("add", params=ADD_PARAMS, files=files)
        answer = _last_json_line(self._retrying(upload).text, self.url)
        if answer.get("Hash") != expected:
            raise CidDisagreementError(f"IPFS node at {self.url}", expected, answer.get("Hash"),
                                       "is it configured with non-default chunking?")
        self.stats.bytes_written += size
        self.stats.cids_written.append(expected)
        return Added(expected, size)

    def fetch(self, cid: str, dest: str | Path, progress: Progress | None = None,
              size: int | None = None) -> Path:
        parse_cid(cid)
        dest = Path(dest)
        return self._retrying(lambda: self._fetch_once(cid, dest, progress, size))

    def _fetch_once(self, cid: str, dest: Path, progress: Progress | None,
                    size: int | None) -> Path:
        tmp = temp_beside(dest)
        params = {"arg": cid, "timeout": f"{self.find_timeout:g}s"}
        try:
            with self.client.stream("POST", "cat", params=params) as resp:
                if resp.status_code != 200:
                    raise self._error(resp, cid)
                actual = _drain(resp, tmp, CidHasher(cid), progress, size, self.stats)
            self.stats.cids_read.append(cid)
            if actual != cid:
                raise ContentMismatchError(cid, actual, f"IPFS node {self.url}")
            return commit_file(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

    def has(self, cid: str) -> bool:
        parse_cid(cid)
        try:
            self._post("pin/ls", cid, params={"arg": cid, "type": "recursive"})
        except ContentNotFoundError:
            return False
        return True

    def pin(self, cid: str) -> None:
        parse_cid(cid)
        self._post("pin/add", cid, params={"arg": cid, "timeout": f"{self.find_timeout:g}s"})


def _drain(resp: httpx.Response, tmp: Path, hasher: CidHasher, progress: Progress | None,
           total: int | None, stats) -> str:
    """Stream a response body into `tmp`, hashing and counting as it arrives; returns the CID."""
    with open(tmp, "wb") as out:
        for chunk in resp.iter_bytes(STREAM_CHUNK):
            out.write(chunk)
            hasher.update(chunk)
            stats.bytes_read += len(chunk)
            if progress is not None:
                progress(hasher.size, total)
    if progress is not None:
        progress(hasher.size, total)
    return hasher.finalize()


def _last_json_line(text: str, url: str) -> dict:
    lines = [line for line in text.splitlines() if line.strip()]
    try:
        return json.loads(lines[-1])
    except (IndexError, ValueError) as exc:
        raise NodeAnswerError(url, f"unreadable add answer {text[:200]!r}") from exc
