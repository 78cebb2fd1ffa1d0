"""Shared helpers for the Ape scripts (Ape skips script files whose names start with "_")."""

from __future__ import annotations

import json
from pathlib import Path

import click
from ape import project

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("StakeVault", "ModelVersionRegistry", "ServerRegistry", "DisputeCourt")


def deployment_path(network) -> Path:
    """deployments/<Pollen's name for the network>.json (pollen.networks): gnosis:chiado ->
    gnosis-chiado.json, gnosis:mainnet -> gnosis.json, ethereum:local -> anvil.json."""
    from pollen.networks import NETWORKS, by_chain_id, canonical

    name = canonical(f"{network.ecosystem.name}:{network.name}")
    if name not in NETWORKS:  # e.g. --network http://127.0.0.1:8546: name it by its chain id
        try:
            known = by_chain_id(network.chain_id)
        except Exception:  # not connected: keep Ape's name
            known = None
        name = known.name if known else name
    return ROOT / "deployments" / f"{name}.json"


def load_contracts(network, path: str | None = None) -> dict:
    """The four deployed contracts for this network, from the deploy script's file."""
    file = Path(path) if path else deployment_path(network)
    if not file.exists():
        raise click.ClickException(
            f"no deployment file {file}: run `ape run deploy --network {network.choice}` first "
            "(or pass --deployment FILE)")
    try:
        addresses = json.loads(file.read_text())["contracts"]
        return {name: getattr(project, name).at(addresses[name]) for name in NAMES}
    except (ValueError, KeyError) as exc:
        raise click.ClickException(f"deployment file {file} is malformed ({exc}); redeploy") from exc


def ether(value: str) -> int:
    """Parse '1.5' (ether) or '1500000000000000000wei' into wei, with a clear error."""
    text = value.strip().lower()
    try:
        if text.endswith("wei"):
            return int(text[:-3])
        from decimal import Decimal

        wei = Decimal(text.removesuffix("ether").strip()) * 10**18
        if wei != wei.to_integral_value() or wei < 0:
            raise ValueError
        return int(wei)
    except Exception as exc:
        raise click.BadParameter(f"{value!r} is not an amount (e.g. 1.5 or 1500wei)") from exc


deployment_option = click.option("--deployment", type=click.Path(dir_okay=False),
                                 help="deployment file (default deployments/<network>.json, e.g. gnosis-chiado.json)")
