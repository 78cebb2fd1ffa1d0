"""CIDs Pollen can verify: parse/validate them and compute them exactly as Kubo does.

Pollen content is added with Kubo's defaults for `--cid-version=1 --raw-leaves`: 256 KiB fixed
chunks, a balanced DAG of at most 174 links per node, raw leaves, sha2-256. A file up to one
chunk is a single raw block (`bafkrei...`), a larger one a dag-pb root (`bafybei...`). The DAG
arithmetic is done by aleph-cid (a Rust crate checked against Go Kubo and js-ipfs); this module
adds strict parsing so a malformed CID is rejected with a reason instead of hashed against.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable

import aleph_cid

from pollen.store.errors import CidError

CHUNK_SIZE = 256 * 1024
MAX_LINKS = 174
READ_SIZE = 1 << 20
CODECS = {0x55: "raw", 0x70: "dag-pb"}
SHA2_256, SHA2_256_LEN = 0x12, 32
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


@dataclass(frozen=True)
class Cid:
    """A parsed CID: `text` is the exact string; `codec` is "raw" or "dag-pb"."""

    text: str
    version: int
    codec: str
    digest: bytes

    def __str__(self) -> str:
        return self.text


def _varint(data: bytes, pos: int, text: str) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data):
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise CidError(text, "truncated varint")


def _b58decode(text: str) -> bytes:
    num = 0
    for ch in text:
        if ch not in _B58:
            raise CidError(text, f"character {ch!r} is not base58btc")
        num = num * 58 + _B58.index(ch)
    raw = num.to_bytes((num.bit_length() + 7) // 8, "big")
    return b"\x00" * (len(text) - len(text.lstrip("1"))) + raw


def _b32decode(text: str, body: str) -> bytes:
    if body != body.lower() or not body:
        raise CidError(text, "CIDv1 must be lowercase base32 ('b' multibase prefix)")
    try:
        raw = base64.b32decode(body.upper() + "=" * (-len(body) % 8))
    except ValueError as exc:
        raise CidError(text, f"invalid base32 ({exc})") from None
    if base64.b32encode(raw).decode().rstrip("=").lower() != body:
        raise CidError(text, "non-canonical base32 (trailing bits)")
    return raw


def _multihash(text: str, raw: bytes, pos: int) -> bytes:
    code, pos = _varint(raw, pos, text)
    length, pos = _varint(raw, pos, text)
    if code != SHA2_256 or length != SHA2_256_LEN:
        raise CidError(text, f"multihash 0x{code:x}/{length} is not sha2-256/32")
    if len(raw) - pos != length:
        raise CidError(text, f"digest is {len(raw) - pos} bytes, expected {length}")
    return raw[pos:]


def parse_cid(text: object) -> Cid:
    """Parse a CIDv0 (`Qm...`) or base32 CIDv1 string; raise CidError saying what is wrong."""
    if not isinstance(text, str):
        raise CidError(text, f"expected a string, got {type(text).__name__}")
    if not text:
        raise CidError(text, "empty string")
    if text.startswith("Qm") and len(text) == 46:
        return Cid(text, 0, "dag-pb", _multihash(text, _b58decode(text), 0))
    if not text.startswith("b"):
        raise CidError(text, "neither a CIDv0 (Qm..., 46 chars) nor a base32 CIDv1 (b...)")
    raw = _b32decode(text, text[1:])
    version, pos = _varint(raw, 0, text)
    if version != 1:
        raise CidError(text, f"CID version {version} (expected 1)")
    codec, pos = _varint(raw, pos, text)
    if codec not in CODECS:
        raise CidError(text, f"codec 0x{codec:x} is not raw (0x55) or dag-pb (0x70)")
    return Cid(text, 1, CODECS[codec], _multihash(text, raw, pos))


class CidHasher:
    """Streaming CID computation; `like` picks the flavour of an expected CID (default v1 raw-leaves)."""

    def __init__(self, like: str | None = None):
        if like is None:
            self._hasher = aleph_cid.CidHasher.for_ipfs_v1_raw_leaves()
        else:
            parse_cid(like)
            self._hasher = aleph_cid.CidHasher.for_expected(like)
        self.size = 0

    def update(self, data: bytes) -> None:
        self._hasher.update(bytes(data))
        self.size += len(data)

    def finalize(self) -> str:
        return self._hasher.finalize()


def cid_of_bytes(data: bytes) -> str:
    """Kubo's CIDv1 raw-leaves CID of `data`."""
    hasher = CidHasher()
    hasher.update(data)
    return hasher.finalize()


def hash_stream(stream: BinaryIO, like: str | None = None,
                on_chunk: Callable[[bytes], None] | None = None) -> tuple[str, int]:
    """(CID, size) of everything read from `stream`; `on_chunk` sees each piece as it is read."""
    hasher = CidHasher(like)
    while chunk := stream.read(READ_SIZE):
        hasher.update(chunk)
        if on_chunk is not None:
            on_chunk(chunk)
    return hasher.finalize(), hasher.size


def cid_of_file(path: str | Path, like: str | None = None) -> tuple[str, int]:
    """(CID, size) of a file on disk, hashed in 1 MiB reads."""
    with open(path, "rb") as stream:
        return hash_stream(stream, like)
