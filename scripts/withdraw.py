"""Withdraw credits and matured unbonding:  ape run withdraw --network ... --account A"""

import click
from ape.cli import ConnectedProviderCommand, account_option

from scripts._pollen import deployment_option, load_contracts


@click.command(cls=ConnectedProviderCommand)
@account_option()
@deployment_option
def cli(network, account, deployment):
    """Withdraw everything ACCOUNT may withdraw now (pull payments)."""
    vault = load_contracts(network, deployment)["StakeVault"]
    credit = vault.credits(account)
    a = vault.accountOf(account)
    if credit == 0 and a.unbonding == 0:
        raise click.ClickException(f"{account.address} has nothing to withdraw")
    tx = vault.withdraw(sender=account)
    ev = [e for e in tx.events if e.event_name == "Withdrawn"][0]
    click.echo(f"withdrew {ev.credit / 1e18:g} credit + {ev.unbonded / 1e18:g} unbonded stake")
