"""Pay for the swarm and get paid:  ape run escrow COMMAND --network ... --account A

    ape run escrow deploy --save                 # a PaymentEscrow over the deployment's registry
    ape run escrow deposit 1.5 [--server S ...]  # client: deposit 1.5 (ether / xDAI / FIL), set
                                                 #   aside 1.5 for each server S (a lane) if given
    ape run escrow withdraw [AMOUNT]             # client: take unallocated deposit back (no delay)
    ape run escrow announce-withdraw 1.0 --server S   # client: start the delay on S's lane
    ape run escrow withdraw --server S           # client: take the announced lane reclaim after it
    ape run escrow price 1000000000 --credit-limit 0.01   # server: wei per block-token
    ape run escrow redeem vouchers.json          # server: redeem a voucher book in one batch
    ape run escrow earnings [--withdraw | --spend 0.5]     # server/auditor: earned balance
    ape run escrow status ADDRESS [--server S]   # deposit (and lane for S), earnings, price

The escrow address comes from --escrow, else the deployment file's "PaymentEscrow" entry.
"""

import json
from pathlib import Path

import click
from ape import project
from ape.cli import ConnectedProviderCommand, account_option

from scripts._pollen import deployment_option, deployment_path, ether, load_contracts

escrow_option = click.option("--escrow", "escrow_address", help="PaymentEscrow address (default: from the deployment file)")


def _with_account(f):
    """account, deployment and escrow options (every command that sends a transaction)."""
    return account_option()(deployment_option(escrow_option(f)))


def _file(network, deployment) -> Path:
    return Path(deployment) if deployment else deployment_path(network)


def _escrow(network, deployment, address):
    if not address:
        try:
            address = json.loads(_file(network, deployment).read_text())["contracts"]["PaymentEscrow"]
        except (OSError, ValueError, KeyError) as exc:
            raise click.ClickException(
                f"no PaymentEscrow in {_file(network, deployment)} ({exc}): pass --escrow ADDRESS "
                "or run `ape run escrow deploy --save` first") from exc
    return project.PaymentEscrow.at(address)


def _wei(amount: str) -> int:
    wei = ether(amount)
    if wei == 0:
        raise click.BadParameter("amount must be > 0")
    return wei


def _show(escrow, address, server=None):
    t = escrow.termsOf(address)
    text = f"{address}: deposit {escrow.balanceOf(address) / 1e18:g} unallocated"
    if server:
        lane = escrow.laneOf(address, server)
        reclaim = f", reclaim of {lane.reclaimAmount / 1e18:g} at {lane.reclaimAt}" if lane.reclaimAmount else ""
        text += f", lane for {server} {lane.amount / 1e18:g} (redeemed {lane.redeemed / 1e18:g}{reclaim})"
    click.echo(f"{text}; earned {escrow.earned(address) / 1e18:g}; price {t.price} wei/block-token, "
               f"credit limit {t.creditLimit / 1e18:g}; fee {escrow.feeBps()} bps, audit pool {escrow.auditPool() / 1e18:g}")


@click.group()
def cli():
    """PaymentEscrow: deposits, reclaims, prices, redemptions, earnings."""


@cli.command(cls=ConnectedProviderCommand)
@account_option()
@deployment_option
@click.option("--fee-bps", default=100, show_default=True, help="protocol fee on redemptions (<= 1000)")
@click.option("--reclaim-delay", default=600, show_default=True, help="seconds (300 .. 30 days)")
@click.option("--save", is_flag=True, help="write the address into the deployment file")
def deploy(network, account, deployment, fee_bps, reclaim_delay, save):
    """Deploy a PaymentEscrow reading the deployment's ServerRegistry (ACCOUNT owns it and pays auditors)."""
    registry = load_contracts(network, deployment)["ServerRegistry"]
    escrow = project.PaymentEscrow.deploy(registry, fee_bps, reclaim_delay, account, sender=account)
    escrow.setAuditPayer(account, sender=account)
    click.echo(f"PaymentEscrow {escrow.address} (fee {fee_bps} bps, reclaim delay {reclaim_delay} s)")
    if save:
        path = _file(network, deployment)
        data = json.loads(path.read_text())
        data["contracts"]["PaymentEscrow"] = escrow.address
        path.write_text(json.dumps(data, indent=2) + "\n")
        click.echo(f"saved to {path}")


@cli.command(cls=ConnectedProviderCommand)
@_with_account
@click.argument("amount")
@click.option("--server", "servers", multiple=True, help="set AMOUNT aside for this server (repeatable)")
def deposit(network, account, deployment, escrow_address, amount, servers):
    """Deposit AMOUNT (ether); with --server, AMOUNT goes into each server's lane."""
    escrow = _escrow(network, deployment, escrow_address)
    wei = _wei(amount)
    if servers:
        escrow.allocate(list(servers), [wei] * len(servers), value=wei * len(servers), sender=account)
    else:
        escrow.deposit(value=wei, sender=account)
    for server in servers or [None]:
        _show(escrow, account.address, server)


@cli.command("announce-withdraw", cls=ConnectedProviderCommand)
@_with_account
@click.argument("amount")
@click.option("--server", required=True, help="the lane's server")
def announce_withdraw(network, account, deployment, escrow_address, amount, server):
    """Announce a reclaim of AMOUNT from SERVER's lane; it may still redeem until the delay passes."""
    escrow = _escrow(network, deployment, escrow_address)
    tx = escrow.announceReclaim(server, _wei(amount), sender=account)
    click.echo(f"reclaim of {amount} from {server}'s lane takeable at {tx.events[0].reclaimAt} (unix time)")


@cli.command(cls=ConnectedProviderCommand)
@_with_account
@click.argument("amount", required=False)
@click.option("--server", help="take the announced reclaim of this server's lane")
def withdraw(network, account, deployment, escrow_address, amount, server):
    """Withdraw AMOUNT (default all) of the unallocated deposit, or with --server take the
    announced reclaim of that lane (what is left of it after redemptions)."""
    escrow = _escrow(network, deployment, escrow_address)
    if server:
        if escrow.laneOf(account, server).reclaimAmount == 0:
            raise click.ClickException(f"no reclaim announced on {server}'s lane: run announce-withdraw first")
        tx = escrow.reclaim(server, sender=account)
        click.echo(f"reclaimed {tx.events[0].amount / 1e18:g}" if tx.events else "reclaimed 0")
        return
    wei = _wei(amount) if amount else escrow.balanceOf(account)
    if wei == 0:
        raise click.ClickException(f"{account.address} has no unallocated deposit")
    escrow.withdrawDeposit(wei, sender=account)
    click.echo(f"withdrew {wei / 1e18:g}")


@cli.command(cls=ConnectedProviderCommand)
@_with_account
@click.argument("price", required=False, type=int)
@click.option("--credit-limit", default="0", help="ether a client may owe before being cut off")
def price(network, account, deployment, escrow_address, price, credit_limit):
    """Declare PRICE (wei per block per token; 0 = free) for ACCOUNT's server, or show it."""
    escrow = _escrow(network, deployment, escrow_address)
    if price is not None:
        if price < 0:
            raise click.BadParameter("price must be >= 0")
        escrow.setPrice(price, ether(credit_limit), sender=account)
    _show(escrow, account.address)


@cli.command(cls=ConnectedProviderCommand)
@_with_account
@click.argument("vouchers", type=click.Path(exists=True, dir_okay=False))
@click.option("--max-fee-bps", type=int, help="refuse a fee above this (default: the current fee)")
def redeem(network, account, deployment, escrow_address, vouchers, max_fee_bps):
    """Redeem the vouchers in VOUCHERS (a server's voucher book, or a JSON list) in one batch."""
    from pollen.payments import SignedVoucher, redeem_args

    escrow = _escrow(network, deployment, escrow_address)
    data = json.loads(Path(vouchers).read_text())
    items = data["vouchers"].values() if isinstance(data, dict) else data
    signed = [SignedVoucher.from_json(v) for v in items]
    mine = [s for s in signed if s.voucher.server == account.address
            and escrow.redeemable(s.voucher.client, s.voucher.server, s.voucher.cumulative) > 0]
    if not mine:
        raise click.ClickException(f"nothing in {vouchers} pays {account.address} now")
    vs, sigs = redeem_args(mine)
    tx = escrow.redeem(vs, sigs, escrow.feeBps() if max_fee_bps is None else max_fee_bps, sender=account)
    batch = [e for e in tx.events if e.event_name == "BatchRedeemed"][0]
    click.echo(f"redeemed {len(mine)} vouchers: {batch.gross / 1e18:g} gross, {batch.fee / 1e18:g} fee; "
               f"gas {tx.gas_used}")


@cli.command(cls=ConnectedProviderCommand)
@_with_account
@click.option("--withdraw", "take", is_flag=True, help="withdraw all earnings")
@click.option("--spend", help="move this much of the earnings into the deposit")
def earnings(network, account, deployment, escrow_address, take, spend):
    """Show, withdraw or spend ACCOUNT's earnings (server redemptions, audit credits)."""
    escrow = _escrow(network, deployment, escrow_address)
    if spend:
        escrow.spendEarned(_wei(spend), sender=account)
    if take:
        if escrow.earned(account) == 0:
            raise click.ClickException(f"{account.address} has no earnings to withdraw")
        escrow.withdraw(sender=account)
    _show(escrow, account.address)


@cli.command(cls=ConnectedProviderCommand)
@deployment_option
@escrow_option
@click.argument("address")
@click.option("--server", help="also show ADDRESS's lane for this server")
def status(network, deployment, escrow_address, address, server):
    """Show ADDRESS's deposit (and lane), earnings and price."""
    _show(_escrow(network, deployment, escrow_address), address, server)
