"""Deploy StakeVault, ModelVersionRegistry, ServerRegistry, DisputeCourt, PaymentEscrow and
AuditFeePayer, wire them, and write the deployment file the Python bindings and the web UI read
(deployments/<network>.json by Pollen's network name: gnosis:chiado -> gnosis-chiado.json,
gnosis:mainnet -> gnosis.json, filecoin:calibration -> filecoin-calibration.json, local -> anvil.json).

    ape run deploy --network ethereum:local:foundry --account TEST::0      # throwaway anvil
    ape run deploy --network http://127.0.0.1:8546 --account TEST::0       # a running anvil
    ape run deploy --network gnosis:chiado:node --account my-deployer --owner 0xTimelockOrSafe

Parameters come from pollen.deploy's preset for the network (anvil's for local networks;
gnosis-chiado, gnosis, filecoin-calibration, filecoin otherwise, or --preset). Outside a dev
chain demo parameters and a plain-key owner are refused unless --allow-demo-params /
--allow-eoa-owner. Ownership is two-step: the proposed --owner must call acceptOwnership().
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from ape import project
from ape.cli import ConnectedProviderCommand, account_option

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pollen import artifacts  # noqa: E402
from pollen.evm_compat import check_bytecode  # noqa: E402
from pollen.deploy import AUDIT_FEE_WEI, CHAIN_IDS, PRESETS, check_production, preset  # noqa: E402
from pollen.escrow import DEFAULT_FEE_BPS, RECLAIM_DELAYS  # noqa: E402

DEPLOYED = ("StakeVault", "ModelVersionRegistry", "ServerRegistry", "DisputeCourt", "PaymentEscrow", "AuditFeePayer")
from pollen.chain import ChainError  # noqa: E402
from pollen.errors import PollenError  # noqa: E402
from scripts._pollen import deployment_path  # noqa: E402


@click.command(cls=ConnectedProviderCommand)
@account_option()
@click.option("--out", type=click.Path(dir_okay=False), help="deployment file to write")
@click.option("--preset", "preset_name", type=click.Choice(list(PRESETS)), help="parameter preset (default: by network)")
@click.option("--owner", help="governance address to propose (a timelock or multisig contract)")
@click.option("--allow-demo-params", is_flag=True, help="accept demo parameters outside a dev chain")
@click.option("--allow-eoa-owner", is_flag=True, help="accept a plain-key owner outside a dev chain")
def cli(network, provider, account, out, preset_name, owner, allow_demo_params, allow_eoa_owner):
    """Deploy Pollen's four contracts with ACCOUNT and write their addresses."""
    if preset_name is None:  # by chain id: dev chains -> anvil, known public chains -> theirs
        by_id = {cid: name for name, cid in CHAIN_IDS.items()} | {31337: "anvil", 1337: "anvil"}
        preset_name = by_id.get(provider.chain_id)
        if preset_name is None:
            raise click.ClickException(f"no parameter preset for chain {provider.chain_id}: pass --preset")
    try:
        params = preset(preset_name)
        owner = owner or account.address
        check_production(provider.chain_id, params, len(provider.web3.eth.get_code(owner)) > 0,
                         allow_demo_params=allow_demo_params, allow_eoa_owner=allow_eoa_owner)
    except ChainError as exc:
        raise click.ClickException(str(exc)) from exc
    try:  # refuse bytecode the target chain cannot run (PUSH0, MCOPY, transient storage, ...)
        check_bytecode(preset_name, {n: artifacts.bytecode(n) for n in DEPLOYED})
    except PollenError as exc:
        raise click.ClickException(str(exc)) from exc
    start = provider.get_block("latest").number or 0
    click.echo(f"Deploying to {network.choice} (chain {provider.chain_id}) from {account.address}")
    vault = project.StakeVault.deploy(params.min_stake, params.unbonding_period, account, sender=account)
    versions = project.ModelVersionRegistry.deploy(sender=account)
    registry = project.ServerRegistry.deploy(vault, versions, sender=account)
    court = project.DisputeCourt.deploy(vault, registry, params.court_tuple(), account, sender=account)
    vault.wire(court, registry, sender=account)
    escrow = project.PaymentEscrow.deploy(registry, DEFAULT_FEE_BPS, RECLAIM_DELAYS[preset_name], account,
                                          sender=account)
    fees = project.AuditFeePayer.deploy(court, escrow, AUDIT_FEE_WEI, account, sender=account)
    escrow.setAuditPayer(fees, sender=account)
    if owner != account.address:
        for contract in (vault, court, escrow, fees):
            contract.transferOwnership(owner, sender=account)
        click.echo(f"  {owner} proposed as owner of StakeVault, DisputeCourt, PaymentEscrow and AuditFeePayer: "
                   "it must call acceptOwnership() on each")
    contracts = {"StakeVault": vault.address, "ModelVersionRegistry": versions.address,
                 "ServerRegistry": registry.address, "DisputeCourt": court.address,
                 "PaymentEscrow": escrow.address, "AuditFeePayer": fees.address}
    for name, address in contracts.items():
        click.echo(f"  {name:<21} {address}")
    path = Path(out) if out else deployment_path(network)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "network": deployment_path(network).stem, "chainId": provider.chain_id,
        "rpc": getattr(provider, "uri", None) or "", "deployedAtBlock": start,
        "contracts": contracts, "preset": preset_name, "parameters": vars(params)}, indent=2) + "\n")
    click.echo(f"Wrote {path}")
