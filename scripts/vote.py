"""Act on a dispute: draw, commit, reveal or resolve.
    ape run vote --network ... --account A 3 draw
    ape run vote --network ... --account A 3 commit --verdict faulty --fingerprint 0x...   (prints the salt: keep it!)
    ape run vote --network ... --account A 3 reveal --verdict faulty --fingerprint 0x... --salt 0x...
    ape run vote --network ... --account A 3 resolve
The fingerprint is the hash of what you recomputed (default: the zero hash, for a manual vote);
--verdict abstain says you could not fetch or use the evidence (not penalised, not paid)."""

import os

import click
from ape.cli import ConnectedProviderCommand, account_option

from scripts._pollen import deployment_option, load_contracts

STAGES = ["none", "awaiting draw", "voting", "appealable", "resolved"]
OUTCOMES = ["pending", "faulty", "honest", "no quorum", "lapsed"]
VERDICTS = {"faulty": 1, "honest": 2, "abstain": 3}  # DisputeCourt.revealVote's verdict codes


def parse_hash(text, what):
    try:
        value = bytes.fromhex(text.removeprefix("0x"))
    except ValueError as exc:
        raise click.BadParameter(f"{what} must be 32 bytes of hex") from exc
    if len(value) != 32:
        raise click.BadParameter(f"{what} must be 32 bytes of hex")
    return value


def parse_salt(text):
    return parse_hash(text, "salt")


@click.command(cls=ConnectedProviderCommand)
@account_option()
@deployment_option
@click.argument("dispute_id", type=click.IntRange(1))
@click.argument("action", type=click.Choice(["draw", "commit", "reveal", "resolve", "appeal", "show"]))
@click.option("--verdict", type=click.Choice(list(VERDICTS)), help="your verdict (commit / reveal)")
@click.option("--fingerprint", default="0x" + "00" * 32, show_default="zero hash",
              help="hash of what you recomputed (commit / reveal; the same both times)")
@click.option("--salt", help="the salt printed at commit (reveal)")
def cli(network, account, deployment, dispute_id, action, verdict, fingerprint, salt):
    """Draw auditors, commit / reveal a vote, resolve (rule a round or settle), appeal a first
    ruling (posting twice the bond), or show DISPUTE_ID."""
    court = load_contracts(network, deployment)["DisputeCourt"]
    if dispute_id > court.disputeCount():
        raise click.BadParameter(f"dispute {dispute_id} does not exist (count {court.disputeCount()})")
    if action in ("commit", "reveal") and verdict is None:
        raise click.UsageError("pass --verdict faulty|honest|abstain")
    fp = parse_hash(fingerprint, "fingerprint")
    if action == "draw":
        court.drawAuditors(dispute_id, sender=account)
    elif action == "commit":
        secret = os.urandom(32)
        commitment = court.commitmentOf(dispute_id, account, VERDICTS[verdict], fp, secret)
        court.commitVote(dispute_id, commitment, sender=account)
        click.echo(f"committed. SALT (needed to reveal, back it up): 0x{secret.hex()}")
    elif action == "reveal":
        if not salt:
            raise click.UsageError("pass --salt (printed when you committed)")
        court.revealVote(dispute_id, VERDICTS[verdict], fp, parse_salt(salt), sender=account)
    elif action == "resolve":
        court.resolve(dispute_id, sender=account)
    elif action == "appeal":
        court.appeal(dispute_id, value=court.appealPrice(dispute_id), sender=account)
    d = court.getDispute(dispute_id)
    click.echo(f"dispute {dispute_id}: {STAGES[d.stage]} (round {d.round}), first ruling {OUTCOMES[d.firstRuling]}, "
               f"outcome {OUTCOMES[d.outcome]}, block {d.block} "
               f"step {d.step}, votes faulty {d.faultyVotes} / honest {d.honestVotes} / abstain "
               f"{d.abstainVotes} of {d.drawnCount} drawn, auditors {list(court.auditorsOf(dispute_id))}")
