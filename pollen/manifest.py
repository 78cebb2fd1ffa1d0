"""Model-version manifests: a versioned JSON schema, validated on every read.

A model version *is* the CID of its manifest. The manifest names the architecture and config,
the tokenizer files, one safetensors shard per transformer block and one for the client parts
(embeddings, final norm, LM head — everything that is not a block), each by CID and byte size,
plus the dtype, the audit tolerance (max relative L2 error between honest outputs), the parent
version's manifest CID and free-text notes / licence. Adapters (LoRA, trained prompts) have
their own small manifest naming the base version they apply to.

Serialisation is canonical (sorted keys, compact, UTF-8), so the same content always gets the
same CID and publishing is idempotent.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pollen.errors import PollenError
from pollen.store.base import ContentStore
from pollen.store.cid import parse_cid
from pollen.dtypes import NAMES
from pollen.store.errors import CidError

SCHEMA = "pollen.manifest/1"
ADAPTER_SCHEMA = "pollen.adapter/1"
DTYPES = NAMES
MAX_MANIFEST_BYTES = 16 << 20


class ManifestError(PollenError):
    """A manifest that cannot be read or fails its schema."""

    def __init__(self, where: str, problem: str):
        self.where = where
        super().__init__(f"invalid manifest {where}: {problem}")


def block_filename(index: int) -> str:
    """Where block `index`'s shard lives in a version folder."""
    return f"blocks/block_{index:05d}.safetensors"


def _cid_field(value: str) -> str:
    try:
        return parse_cid(value).text
    except CidError as exc:  # pydantic reports ValueErrors with the field's location
        raise ValueError(str(exc)) from None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class FileRef(_Strict):
    """One file of a version: where it goes (relative path), its CID and exact byte size."""

    path: str = Field(min_length=1, max_length=200)
    cid: str
    size: int = Field(ge=0)

    @field_validator("cid")
    @classmethod
    def _cid(cls, value: str) -> str:
        return _cid_field(value)

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        parts = PurePosixPath(value).parts
        if value.startswith("/") or ".." in parts or "\\" in value:
            raise ValueError(f"path {value!r} must be relative, without '..' or backslashes")
        return value


class Tolerance(_Strict):
    """How far honest outputs of a span may differ across hardware (audits compare within it).

    "block_token_relative_l2" (judgment v2, pollen.judgment): per block, per token, on sketches.
    "max_relative_l2" (the first wave's whole-span metric) is still parsed for old manifests;
    auditors judge every version with the v2 metric."""

    metric: Literal["block_token_relative_l2", "max_relative_l2"] = "block_token_relative_l2"
    value: float = Field(gt=0, lt=1)

    @property
    def micros(self) -> int:
        """The on-chain form (ModelVersionRegistry's toleranceMicros)."""
        return round(self.value * 1_000_000)


class Manifest(_Strict):
    schema_: Literal["pollen.manifest/1"] = Field(SCHEMA, alias="schema")
    name: str = Field(min_length=1, max_length=200)
    architecture: str = Field(min_length=1)
    model_type: str = Field(min_length=1)
    config: dict[str, Any]
    num_blocks: int = Field(ge=1)
    block_prefix: str = Field(min_length=1)  # block i's tensors are named f"{block_prefix}{i}."
    dtype: Literal["float32", "bfloat16", "float16"]
    tolerance: Tolerance
    blocks: list[FileRef]
    client: FileRef
    tokenizer: list[FileRef] = []
    parent: str | None = None  # the parent version's manifest CID
    notes: str = ""
    license: str = ""

    @field_validator("parent")
    @classmethod
    def _parent(cls, value: str | None) -> str | None:
        return None if value is None else _cid_field(value)

    @model_validator(mode="after")
    def _consistent(self) -> "Manifest":
        if len(self.blocks) != self.num_blocks:
            raise ValueError(f"{len(self.blocks)} block shards listed for num_blocks={self.num_blocks}")
        for i, ref in enumerate(self.blocks):
            if ref.path != block_filename(i):
                raise ValueError(f"block {i} must be stored at {block_filename(i)!r}, not {ref.path!r}")
        paths = [f.path for f in [*self.blocks, self.client, *self.tokenizer]]
        if len(set(paths)) != len(paths):
            raise ValueError("file paths are not unique")
        return self

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in [*self.blocks, self.client, *self.tokenizer])


class AdapterManifest(_Strict):
    schema_: Literal["pollen.adapter/1"] = Field(ADAPTER_SCHEMA, alias="schema")
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["lora", "prompt", "other"]
    base: str  # manifest CID of the model version it applies to
    config: dict[str, Any] = {}
    files: list[FileRef] = Field(min_length=1)
    notes: str = ""
    license: str = ""

    @field_validator("base")
    @classmethod
    def _base(cls, value: str) -> str:
        return _cid_field(value)


def to_bytes(manifest: Manifest | AdapterManifest) -> bytes:
    """Canonical JSON bytes (sorted keys, no whitespace, UTF-8): equal content, equal CID."""
    data = manifest.model_dump(mode="json", by_alias=True)
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _explain(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        problems.append(f"{where}: {err['msg']}")
    more = f" (+{exc.error_count() - 5} more)" if exc.error_count() > 5 else ""
    return "; ".join(problems) + more


def parse(data: bytes | str | dict, where: str = "(in memory)", adapter: bool = False):
    """Validate raw manifest content against its schema; ManifestError says what fails."""
    if isinstance(data, (bytes, str)):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise ManifestError(where, f"not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ManifestError(where, f"expected a JSON object, got {type(data).__name__}")
    expected = ADAPTER_SCHEMA if adapter else SCHEMA
    if data.get("schema") != expected:
        raise ManifestError(where, f"schema is {data.get('schema')!r}, this Pollen reads {expected!r}")
    try:
        return (AdapterManifest if adapter else Manifest).model_validate(data)
    except ValidationError as exc:
        raise ManifestError(where, _explain(exc)) from None


def load(store: ContentStore, cid: str, adapter: bool = False):
    """Fetch a manifest by CID (verified against the CID) and validate it."""
    parse_cid(cid)
    return parse(store.cat(cid), where=cid, adapter=adapter)


def json_schema(adapter: bool = False) -> dict:
    """The JSON Schema of the manifest (for other tools, e.g. the web UI)."""
    return (AdapterManifest if adapter else Manifest).model_json_schema(by_alias=True)
