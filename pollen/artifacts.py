"""Contract ABIs and bytecode, read only from `ape compile`'s output.

Where they are found, first match wins:
  1. `$POLLEN_ARTIFACTS` (a path to an `ape compile` manifest or to an exported copy);
  2. the source checkout's `.build/__local__.json` (what `ape compile` writes);
  3. `pollen/abi/contracts.json`, the copy `make compile` exports next to this module so that an
     installed package (a wheel built after `make compile`) carries the ABIs it was built with.

    python -m pollen.artifacts export    # (re)write the packaged copy from .build/
"""

from __future__ import annotations

import json
import os
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

from pollen.errors import PollenError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CHECKOUT_MANIFEST = PROJECT_ROOT / ".build" / "__local__.json"
PACKAGED_MANIFEST = Path(__file__).resolve().parent / "abi" / "contracts.json"
CONTRACT_NAMES = ("StakeVault", "ModelVersionRegistry", "ServerRegistry", "DisputeCourt")


class ArtifactsMissing(PollenError):
    def __init__(self, path: Path, detail: str = ""):
        super().__init__(
            f"contract artifacts not found or incomplete at {path}{detail}: run `make compile` "
            "(ape compile) in the project root first, set POLLEN_ARTIFACTS to an `ape compile` "
            "manifest, or install a pollen package built after `make compile`"
        )


def default_manifest() -> Path:
    """The manifest this process reads (see the module docstring for the order)."""
    if os.environ.get("POLLEN_ARTIFACTS"):
        return Path(os.environ["POLLEN_ARTIFACTS"])
    if CHECKOUT_MANIFEST.exists() or not PACKAGED_MANIFEST.exists():
        return CHECKOUT_MANIFEST
    return PACKAGED_MANIFEST


@lru_cache(maxsize=4)
def _manifest(path: Path | None = None) -> dict[str, Any]:
    path = path or default_manifest()
    try:
        return json.loads(path.read_text())["contractTypes"]
    except (OSError, ValueError, KeyError) as exc:
        raise ArtifactsMissing(path, f" ({exc})") from exc


def export(source: Path = CHECKOUT_MANIFEST, target: Path = PACKAGED_MANIFEST) -> Path:
    """Write the ABIs and deployment bytecode of `source` (an `ape compile` manifest) to `target`."""
    types = _manifest(source)
    slim = {name: {key: ct[key] for key in ("abi", "deploymentBytecode") if key in ct}
            for name, ct in types.items()}
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps({"contractTypes": slim}, separators=(",", ":")))
    tmp.replace(target)
    return target


def abi(name: str, path: Path | None = None) -> list[dict[str, Any]]:
    """The ABI of a compiled contract."""
    try:
        return _manifest(path)[name]["abi"]
    except KeyError as exc:
        raise ArtifactsMissing(path or default_manifest(), f" (no contract {name!r})") from exc


def bytecode(name: str, path: Path | None = None) -> str:
    """The deployment bytecode (0x-hex) of a compiled contract."""
    try:
        return _manifest(path)[name]["deploymentBytecode"]["bytecode"]
    except KeyError as exc:
        raise ArtifactsMissing(path or default_manifest(), f" (no bytecode for {name!r})") from exc


def error_selectors(path: Path | None = None) -> dict[bytes, tuple[str, list[str]]]:
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


if __name__ == "__main__":
    if sys.argv[1:] != ["export"]:
        raise SystemExit("usage: python -m pollen.artifacts export")
    print(f"exported contract ABIs to {export()}")
