"""Deploy StakeVault, ModelVersionRegistry, ServerRegistry and DisputeCourt, wire them, and write
the deployment file the Python bindings and the web UI read.

    ape run deploy --network ethereum:local:foundry --account TEST::0      # throwaway anvil
    ape run deploy --network http://127.0.0.1:8546 --account TEST::0       # a running anvil
    ape run deploy --network gnosis:chiado:node --account my-operator       # a real network
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from ape import project
from ape.cli import ConnectedProviderCommand, account_option

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pollen.deploy import Parameters  # noqa: E402
from scripts._pollen import deployment_path  # noqa: E402


@click.command(cls=ConnectedProviderCommand)
@account_option()
@click.option("--out", type=click.Path(dir_okay=False), help="deployment file to write")
def cli(network, provider, account, out):
    """Deploy Pollen's four contracts with ACCOUNT and write their addresses."""
    params = Parameters()
    start = provider.get_block("latest").number or 0
    click.echo(f"Deploying to {network.choice} (chain {provider.chain_id}) from {account.address}")
    vault = project.StakeVault.deploy(params.min_stake, params.unbonding_period, account, sender=account)
    versions = project.ModelVersionRegistry.deploy(sender=account)
    registry = project.ServerRegistry.deploy(vault, versions, sender=account)
    court = project.DisputeCourt.deploy(vault, registry, params.court_tuple(), account, sender=account)
    vault.wire(court, registry, sender=account)
    contracts = {"StakeVault": vault.address, "ModelVersionRegistry": versions.address,
                 "ServerRegistry": registry.address, "DisputeCourt": court.address}
    for name, address in contracts.items():
        click.echo(f"  {name:<21} {address}")
    path = Path(out) if out else deployment_path(network)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "network": network.choice, "chainId": provider.chain_id,
        "rpc": getattr(provider, "uri", None) or "", "deployedAtBlock": start,
        "contracts": contracts, "parameters": vars(params)}, indent=2) + "\n")
    click.echo(f"Wrote {path}")
