"""Act on a dispute: draw, commit, reveal or resolve.
    ape run vote --network ... --account A 3 draw
    ape run vote --network ... --account A 3 commit --faulty      (prints the salt: keep it!)
    ape run vote --network ... --account A 3 reveal --faulty --salt 0x...
    ape run vote --network ... --account A 3 resolve"""

import os

import click
from ape.cli import ConnectedProviderCommand, account_option

from scripts._pollen import deployment_option, load_contracts

STAGES = ["none", "awaiting draw", "voting", "resolved"]
OUTCOMES = ["pending", "faulty", "honest", "no quorum"]


def parse_salt(text):
    try:
        salt = bytes.fromhex(text.removeprefix("0x"))
    except ValueError as exc:
        raise click.BadParameter("salt must be 32 bytes of hex") from exc
    if len(salt) != 32:
        raise click.BadParameter("salt must be 32 bytes of hex")
    return salt


@click.command(cls=ConnectedProviderCommand)
@account_option()
@deployment_option
@click.argument("dispute_id", type=click.IntRange(1))
@click.argument("action", type=click.Choice(["draw", "commit", "reveal", "resolve", "show"]))
@click.option("--faulty/--honest", default=None, help="your verdict (commit / reveal)")
@click.option("--salt", help="the salt printed at commit (reveal)")
def cli(network, account, deployment, dispute_id, action, faulty, salt):
    """Draw auditors, commit / reveal a vote, resolve, or show DISPUTE_ID."""
    court = load_contracts(network, deployment)["DisputeCourt"]
    if dispute_id > court.disputeCount():
        raise click.BadParameter(f"dispute {dispute_id} does not exist (count {court.disputeCount()})")
    if action in ("commit", "reveal") and faulty is None:
        raise click.UsageError("pass --faulty or --honest")
    if action == "draw":
        court.drawAuditors(dispute_id, sender=account)
    elif action == "commit":
        secret = os.urandom(32)
        court.commitVote(dispute_id, court.commitmentOf(dispute_id, account, faulty, secret), sender=account)
        click.echo(f"committed. SALT (needed to reveal, back it up): 0x{secret.hex()}")
    elif action == "reveal":
        if not salt:
            raise click.UsageError("pass --salt (printed when you committed)")
        court.revealVote(dispute_id, faulty, parse_salt(salt), sender=account)
    elif action == "resolve":
        court.resolve(dispute_id, sender=account)
    d = court.getDispute(dispute_id)
    click.echo(f"dispute {dispute_id}: {STAGES[d.stage]}, outcome {OUTCOMES[d.outcome]}, "
               f"votes faulty {d.faultyVotes} / honest {d.honestVotes} of {d.drawnCount} drawn, "
               f"auditors {list(court.auditorsOf(dispute_id))}")
