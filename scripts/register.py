"""Register (or update) a server:
    ape run register --network ... --account A --version 1 --blocks 0:15 --endpoint grpc://host:31330"""

import click
from ape.cli import ConnectedProviderCommand, account_option

from scripts._pollen import deployment_option, load_contracts


def parse_span(text: str) -> tuple[int, int]:
    try:
        first, last = (int(x) for x in text.split(":"))
    except ValueError as exc:
        raise click.BadParameter(f"{text!r}: expected FIRST:LAST, e.g. 0:15") from exc
    if not 0 <= first < last:
        raise click.BadParameter(f"{text!r}: need 0 <= FIRST < LAST")
    return first, last


@click.command(cls=ConnectedProviderCommand)
@account_option()
@deployment_option
@click.option("--version", "version_id", type=int, required=True, help="model version id")
@click.option("--blocks", required=True, help="span FIRST:LAST (last exclusive)")
@click.option("--endpoint", required=True, help="where clients reach the server")
@click.option("--signer", help="receipt signing address (default: the account itself)")
@click.option("--throughput", type=click.IntRange(1), default=10, show_default=True)
@click.option("--leave", is_flag=True, help="leave the registry instead")
def cli(network, account, deployment, version_id, blocks, endpoint, signer, throughput, leave):
    """Register ACCOUNT's server, update it if already active, or --leave."""
    registry = load_contracts(network, deployment)["ServerRegistry"]
    if leave:
        registry.leave(sender=account)
        click.echo("left the registry")
        return
    first, last = parse_span(blocks)
    args = (signer or account.address, endpoint, version_id, first, last, throughput)
    if registry.isActive(account):
        registry.update(*args, sender=account)
    else:
        registry.register(*args, sender=account)
    s = registry.currentTerm(account)
    click.echo(f"{account.address} serves version {s.versionId} blocks [{s.firstBlock}, {s.lastBlock}) "
               f"signed by {s.signer}")
