"""The networks Pollen deploys to, by name: one table for the deploy presets, the CLI's
`--network`, the daemon, the client and the deployment files (`deployments/<name>.json`).

    network("gnosis:chiado:node").name  -> "gnosis-chiado"   (Ape's triplet, or "gnosis-chiado")
    deployment_file("gnosis-chiado")    -> deployments/gnosis-chiado.json
    resolve_deployment(network=None, deployment=None) -> deployments/demo.json (the dev default)

A name that is not in the table still resolves when `deployments/<name>.json` exists (e.g.
"demo", written by `make demo`), so a private swarm can pick any name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pollen.errors import PollenError

DEPLOYMENTS_DIR = Path("deployments")  # relative to the working directory; POLLEN_DEPLOYMENTS overrides
DEFAULT_DEPLOYMENT = "demo"  # what `make demo` / `make chain` write, and what commands default to


class NetworkError(PollenError):
    """An unknown network name, or a network without a deployment file."""


@dataclass(frozen=True)
class Network:
    name: str  # canonical name: the preset's key and the deployment file's stem
    chain_id: int
    rpc: str  # public default JSON-RPC endpoint (override with --rpc)
    currency: str  # native currency symbol
    block_seconds: float  # typical block time
    ape: str  # Ape's network choice for `ape run deploy --network ...` (opcodes: pollen.evm_compat)
    dev: bool = False  # a throwaway local chain (demo parameters allowed)


NETWORKS: dict[str, Network] = {n.name: n for n in (
    Network("anvil", 31337, "http://127.0.0.1:8545", "ETH", 1.0, "ethereum:local:foundry", dev=True),
    Network("gnosis-chiado", 10200, "https://rpc.chiadochain.net", "xDAI", 5.0, "gnosis:chiado:node"),
    Network("gnosis", 100, "https://rpc.gnosischain.com", "xDAI", 5.0, "gnosis:mainnet:node"),
    Network("filecoin-calibration", 314159, "https://api.calibration.node.glif.io/rpc/v1", "tFIL", 30.0,
            "filecoin:calibration:node"),
    Network("filecoin", 314, "https://api.node.glif.io/rpc/v1", "FIL", 30.0, "filecoin:mainnet:node"),
)}

# Other spellings users type: Ape's triplets and pairs, "<ecosystem>-mainnet", dev-chain names.
ALIASES = {"local": "anvil", "localhost": "anvil", "dev": "anvil", "foundry": "anvil", "hardhat": "anvil",
           "ethereum-local": "anvil", "ethereum:local": "anvil", "chiado": "gnosis-chiado",
           "gnosis-mainnet": "gnosis", "xdai": "gnosis", "calibration": "filecoin-calibration",
           "calibnet": "filecoin-calibration", "filecoin-mainnet": "filecoin"}


def canonical(name: str) -> str:
    """The table's name for `name` ("gnosis:chiado:node" -> "gnosis-chiado"); unknown names are
    returned lower-cased (they may still name a deployment file)."""
    text = name.strip().lower()
    parts = text.split(":")
    if len(parts) == 3:  # Ape triplet: ecosystem:network:provider
        text = ":".join(parts[:2])
    text = ALIASES.get(text, text)
    if ":" in text:
        ecosystem, net = text.split(":", 1)
        text = ALIASES.get(f"{ecosystem}-{net}", ecosystem if net == "mainnet" else f"{ecosystem}-{net}")
    return text


def network(name: str) -> Network:
    """The network called `name` (any spelling in ALIASES or Ape's triplet); raises NetworkError
    naming the known ones."""
    key = canonical(name)
    if key not in NETWORKS:
        raise NetworkError(f"unknown network {name!r}: known networks are {', '.join(NETWORKS)} "
                           f"(or any name with a file {deployments_dir() / '<name>.json'})")
    return NETWORKS[key]


def by_chain_id(chain_id: int) -> Network | None:
    """The known network with this chain id (1337 and 31337 are dev chains: anvil)."""
    if chain_id == 1337:
        return NETWORKS["anvil"]
    return next((n for n in NETWORKS.values() if n.chain_id == chain_id), None)


def deployments_dir() -> Path:
    return Path(os.environ.get("POLLEN_DEPLOYMENTS", str(DEPLOYMENTS_DIR)))


def deployment_file(name: str) -> Path:
    """deployments/<canonical name>.json (whether or not it exists)."""
    return deployments_dir() / f"{canonical(name)}.json"


def available() -> list[str]:
    """Names with a deployment file here."""
    folder = deployments_dir()
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def resolve_deployment(network_name: str | None = None, deployment: str | None = None) -> Path:
    """The deployment file a command should read: --deployment FILE wins, then --network NAME
    (deployments/<name>.json, which must exist), then deployments/demo.json."""
    if deployment and network_name:
        raise NetworkError("pass --network or --deployment, not both")
    if deployment:
        return Path(deployment)
    if not network_name:
        return deployment_file(DEFAULT_DEPLOYMENT)
    path = deployment_file(network_name)
    if not path.exists():
        known = canonical(network_name) in NETWORKS
        hint = (f"deploy there first: `python -m pollen.deploy --network {canonical(network_name)} --rpc URL "
                f"--out {path}` (or `ape run deploy --network {network(network_name).ape} --account NAME`)"
                if known else f"unknown network {network_name!r}; known: {', '.join(NETWORKS)}")
        have = available()
        raise NetworkError(f"no deployment file {path}: {hint}"
                           + (f"; deployment files here: {', '.join(have)}" if have else ""))
    return path


def deployment_options(f):
    """Click options `--network NAME` and `--deployment FILE` for a command that reads a
    deployment; the command receives `deployment` (a path string, resolved as above)."""
    import functools

    import click

    @functools.wraps(f)
    def wrapper(*args, network=None, deployment=None, **kwargs):
        try:
            path = resolve_deployment(network, deployment)
        except NetworkError as exc:
            raise click.UsageError(str(exc)) from exc
        return f(*args, deployment=str(path), **kwargs)

    wrapper = click.option("--deployment", type=click.Path(dir_okay=False),
                           help=f"deployment file (default: {deployments_dir()}/<network>.json, or "
                                f"{deployment_file(DEFAULT_DEPLOYMENT)} without --network)")(wrapper)
    return click.option("--network", help=f"network name: {', '.join(NETWORKS)} or a deployment file's "
                                           f"name under {deployments_dir()}/")(wrapper)
