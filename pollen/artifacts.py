"""Contract ABIs and bytecode, read only from `ape compile`'s output (.build/__local__.json)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from pollen.errors import PollenError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BUILD_MANIFEST = PROJECT_ROOT / ".build" / "__local__.json"
CONTRACT_NAMES = ("StakeVault", "ModelVersionRegistry", "ServerRegistry", "DisputeCourt")


class ArtifactsMissing(PollenError):
    def __init__(self, path: Path, detail: str = ""):
        super().__init__(
            f"contract artifacts not found or incomplete at {path}{detail}: run `make compile` "
            "(ape compile) in the project root first"
        )


@lru_cache(maxsize=4)
def _manifest(path: Path = BUILD_MANIFEST) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())["contractTypes"]
    except (OSError, ValueError, KeyError) as exc:
        raise ArtifactsMissing(path, f" ({exc})") from exc


def abi(name: str, path: Path = BUILD_MANIFEST) -> list[dict[str, Any]]:
    """The ABI of a compiled contract."""
    try:
        return _manifest(path)[name]["abi"]
    except KeyError as exc:
        raise ArtifactsMissing(path, f" (no contract {name!r})") from exc


def bytecode(name: str, path: Path = BUILD_MANIFEST) -> str:
    """The deployment bytecode (0x-hex) of a compiled contract."""
    try:
        return _manifest(path)[name]["deploymentBytecode"]["bytecode"]
    except KeyError as exc:
        raise ArtifactsMissing(path, f" (no bytecode for {name!r})") from exc


def error_selectors(path: Path = BUILD_MANIFEST) -> dict[bytes, tuple[str, list[str]]]:
    """4-byte selector -> (error name, input types) over every compiled contract's custom errors."""
    from eth_utils import keccak

    out: dict[bytes, tuple[str, list[str]]] = {}
    for contract in _manifest(path).values():
        for item in contract.get("abi", []):
            if item.get("type") != "error":
                continue
            types = [_abi_type(i) for i in item.get("inputs", [])]
            signature = f"{item['name']}({','.join(types)})"
            out[keccak(text=signature)[:4]] = (item["name"], types)
    return out


def _abi_type(item: dict[str, Any]) -> str:
    if item["type"].startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in item["components"])
        return f"({inner}){item['type'][5:]}"
    return item["type"]
