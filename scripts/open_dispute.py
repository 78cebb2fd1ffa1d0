"""Open a dispute from a receipt file the client saved, naming the first faulty block:
    ape run open_dispute --network ... --account A --receipt receipt.json --evidence bafy... --block 5
The file is {"receipt": {...}, "signature": "0x..."} (see pollen.receipts.Receipt.to_json).
The registry term checked is the receipt's own `term` field."""

import json
import os
import sys
import time
from pathlib import Path

import click
from ape.cli import ConnectedProviderCommand, account_option

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pollen.receipts import KIND_NAMES, Receipt, ReceiptDomain, ReceiptError, recover_signer  # noqa: E402
from scripts._pollen import deployment_option, load_contracts  # noqa: E402


@click.command(cls=ConnectedProviderCommand)
@account_option()
@deployment_option
@click.option("--receipt", "receipt_file", type=click.Path(exists=True, dir_okay=False), required=True)
@click.option("--evidence", required=True, help="CID of the evidence bundle on IPFS")
@click.option("--block", "block", type=click.IntRange(0, 2**32 - 1), default=None,
              help="global index of the first faulty block, within the receipt's span "
                   "(default: the span's first block)")
def cli(network, provider, account, deployment, receipt_file, evidence, block):
    """Open a dispute over a signed receipt: commit, then reveal a block later with the bond
    (scaled to the accused's stake: the court's bondFor)."""
    c = load_contracts(network, deployment)
    court, registry = c["DisputeCourt"], c["ServerRegistry"]
    try:
        data = json.loads(Path(receipt_file).read_text())
        receipt = Receipt.from_json(data["receipt"])
        sig = bytes.fromhex(str(data["signature"]).removeprefix("0x"))
        signer = recover_signer(receipt, ReceiptDomain(provider.chain_id, court.address), sig)
    except (ValueError, KeyError, ReceiptError) as exc:
        raise click.ClickException(f"{receipt_file} is not a signed receipt file: {exc}") from exc
    block = receipt.first_block if block is None else block
    if not receipt.first_block <= block < receipt.last_block:
        raise click.BadParameter(f"block {block} is outside the receipt's span "
                                 f"[{receipt.first_block}, {receipt.last_block})", param_hint="--block")
    if not registry.signedFor(receipt.server, signer, receipt.version_id, receipt.first_block,
                              receipt.last_block, receipt.issued_at, receipt.term):
        raise click.ClickException(f"{signer} was not the registered signer of {receipt.server} "
                                   f"for that span and time in term {receipt.term}; the court would refuse it")
    salt = os.urandom(32)
    commitment = court.openingCommitment(account.address, court.hashReceipt(receipt.as_tuple()), evidence, block, salt)
    court.commitOpening(commitment, sender=account)
    click.echo(f"opening committed (salt 0x{salt.hex()}); revealing once a new block is mined ...")
    start = provider.get_block("latest").number
    if provider.chain_id in (31337, 1337):  # a dev chain that mines only on transactions
        provider.make_request("evm_mine", [])
    while provider.get_block("latest").number <= start:
        time.sleep(0.5)
    bond = court.bondFor(receipt.server)  # all of it is the bond: no margin
    tx = court.openDispute(receipt.as_tuple(), sig, evidence, block, salt, value=bond, sender=account)
    ev = [e for e in tx.events if e.event_name == "DisputeOpened"][0]
    click.echo(f"dispute {ev.disputeId} opened against {ev.accused} over block {ev.blockIndex} of "
               f"{KIND_NAMES[receipt.kind]} step {receipt.step}; auditors drawn after block {ev.drawBlock}")
