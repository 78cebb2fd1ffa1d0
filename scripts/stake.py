"""Stake, request an unstake, or show an account:  ape run stake --network ... --account A 1.5"""

import click
from ape.cli import ConnectedProviderCommand, account_option

from scripts._pollen import deployment_option, ether, load_contracts


@click.command(cls=ConnectedProviderCommand)
@account_option()
@deployment_option
@click.argument("amount", required=False)
@click.option("--unstake", is_flag=True, help="move AMOUNT from active stake into unbonding instead")
def cli(network, account, deployment, amount, unstake):
    """Stake AMOUNT (ether) from ACCOUNT, or with --unstake request its withdrawal."""
    vault = load_contracts(network, deployment)["StakeVault"]
    if amount is not None:
        wei = ether(amount)
        if wei == 0:
            raise click.BadParameter("amount must be > 0")
        if unstake:
            vault.requestUnstake(wei, sender=account)
        else:
            vault.stake(value=wei, sender=account)
    a = vault.accountOf(account)
    click.echo(f"{account.address}: staked {a.staked / 1e18:g}, unbonding {a.unbonding / 1e18:g} "
               f"(release at {a.releaseAt}), credits {vault.credits(account) / 1e18:g}, "
               f"min stake {vault.minStake() / 1e18:g}")
