"""Drives a Pollen deployment from a separate OS process for the browser end-to-end tests.

The browser test (frontend/e2e) plays one user through the UI; this process plays everyone
else — maintainer, other operators, challengers, auditors — with pollen.chain and anvil's
public dev keys, so the UI has to pick their transactions up from the chain as they land.

    python tests/frontend/chain_driver.py populate   DEPLOYMENT
    python tests/frontend/chain_driver.py receipt    DEPLOYMENT --server-index 2 --out FILE
    python tests/frontend/chain_driver.py open       DEPLOYMENT --challenger-index 3 --accused-index 2
    python tests/frontend/chain_driver.py vote       DEPLOYMENT --dispute N [--auditors 3,4,5] [--step]
    python tests/frontend/chain_driver.py state      DEPLOYMENT --dispute N

Accounts (anvil's default mnemonic): 0 deployer + model maintainer, 1 the browser's wallet,
2..5 operators serving version 1 (they are the accused and the auditors).
With --step, `vote` prints one line per phase ("PHASE drawn", ...) and waits for a line on stdin
before the next, so the test can check that the page shows each phase live, without reloading.
"""

from __future__ import annotations

import json
import os
import sys
import time

from pathlib import Path

import click
from web3 import Web3

# Runs as a script from any directory: make the repository's packages importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from devstack.anvil import dev_keys
from pollen.chain import Chain, Deployment
from pollen.receipts import KIND_INFERENCE, Receipt, hash_tensor_bytes, sign_receipt

ETHER = 10**18
KEYS = dev_keys(10)
# Operators 2..5 of version 1 (8 blocks): thick at the front, thin at the back, so the coverage
# picture has 1-, 2- and 3-server blocks.
SPANS = {2: (0, 4), 3: (0, 6), 4: (2, 8), 5: (4, 8)}


def chain_for(deployment: str, index: int) -> Chain:
    return Chain.connect(Deployment.load(deployment), private_key=KEYS[index])


def mine(chain: Chain, blocks: int = 1) -> None:
    chain.w3.provider.make_request("anvil_mine", [hex(blocks)])


def say(line: str) -> None:
    print(line, flush=True)


@click.group()
def cli() -> None:
    """Play the other participants of a Pollen deployment."""


@cli.command()
@click.argument("deployment")
def populate(deployment: str) -> None:
    """A model with two versions and an adapter; operators 2..5 stake and register on version 1."""
    maintainer = chain_for(deployment, 0)
    model = maintainer.create_model("SmolLM2-135M-Instruct")
    v1 = maintainer.publish_version(model, "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",
                                    8, 0, 10_000)
    maintainer.publish_version(model, "bafybeihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
                               8, v1, 5_000)
    maintainer.publish_adapter(v1, "bafkreie7q3iidccmpvszul7kudcvvuavuo7u6gzlbobczuk5nqk3b4akba",
                               "chat-lora-r8", "lora,chat")
    old = maintainer.create_model("TinyLlama-test")
    old_v = maintainer.publish_version(old, "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4",
                                       4, 0, 20_000)
    maintainer.deprecate_version(old_v)
    for index, (first, last) in SPANS.items():
        op = chain_for(deployment, index)
        op.stake(2 * ETHER)
        op.register(op.address, f"grpc://127.0.0.1:{31330 + index}", v1, first, last, 10 * index)
    say(f"populated: model {model}, version {v1}, operators {sorted(SPANS)}")


@cli.command()
@click.argument("deployment")
@click.option("--server-index", type=int, default=2)
@click.option("--out", required=True, type=click.Path(dir_okay=False))
def receipt(deployment: str, server_index: int, out: str) -> None:
    """Write a signed receipt file (the client's format) for a step served by operator N."""
    chain = chain_for(deployment, server_index)
    first, last = SPANS[server_index]
    now = chain.w3.eth.get_block("latest")["timestamp"]
    r = Receipt(server=chain.address, version_id=1, first_block=first, last_block=last,
                term=chain.current_term(chain.address),
                kind=KIND_INFERENCE, session_id=os.urandom(32), step=3,
                input_hash=hash_tensor_bytes("float32", (1, 4), os.urandom(16)),
                output_hash=hash_tensor_bytes("float32", (1, 4), os.urandom(16)),
                blocks_root=os.urandom(32), issued_at=now)
    domain = chain.receipt_domain()
    signature = sign_receipt(r, domain, KEYS[server_index])
    with open(out, "w") as f:
        json.dump({"receipt": r.to_json(), "signature": "0x" + signature.hex(),
                   "domain": {"chainId": domain.chain_id, "court": domain.court}}, f, indent=2)
    say(f"receipt: {out}")


@cli.command("open")
@click.argument("deployment")
@click.option("--challenger-index", type=int, required=True)
@click.option("--accused-index", type=int, required=True)
def open_(deployment: str, challenger_index: int, accused_index: int) -> None:
    """Open a dispute as operator C against operator A, then draw its auditors."""
    accused = chain_for(deployment, accused_index)
    first, last = SPANS[accused_index]
    now = accused.w3.eth.get_block("latest")["timestamp"]
    r = Receipt(server=accused.address, version_id=1, first_block=first, last_block=last, term=0,
                kind=KIND_INFERENCE, session_id=os.urandom(32), step=0, input_hash=os.urandom(32),
                output_hash=os.urandom(32), blocks_root=os.urandom(32), issued_at=now)
    sig = sign_receipt(r, accused.receipt_domain(), KEYS[accused_index])
    challenger = chain_for(deployment, challenger_index)
    dispute_id = challenger.open_dispute(r, sig, "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",
                                         last - 1)
    mine(challenger, 3)
    auditors = challenger.draw_auditors(dispute_id)
    say(f"opened {dispute_id} auditors {','.join(auditors)}")


@cli.command()
@click.argument("deployment")
@click.option("--dispute", "dispute_id", type=int, required=True)
@click.option("--auditors", default="", help="comma-separated account indexes (default: all drawn)")
@click.option("--faulty", "verdict", flag_value="faulty", default=True)
@click.option("--honest", "verdict", flag_value="honest")
@click.option("--abstain", "verdict", flag_value="abstain")
@click.option("--fingerprint", default="0x" + "00" * 32, help="32-byte hex bound to each vote")
@click.option("--step", is_flag=True, help="pause for a stdin line after each phase")
@click.option("--no-resolve", is_flag=True)
def vote(deployment: str, dispute_id: int, auditors: str, verdict: str, fingerprint: str, step: bool,
         no_resolve: bool) -> None:
    """Draw (if needed), commit, reveal and resolve a dispute as its drawn auditors."""
    anyone = chain_for(deployment, 0)

    def phase(name: str) -> None:
        say(f"PHASE {name}")
        if step and not sys.stdin.readline():
            raise SystemExit("stdin closed: the test went away")

    if anyone.dispute(dispute_id)["stage"] == "awaiting_draw":
        mine(anyone, 3)
        anyone.draw_auditors(dispute_id)
        phase("drawn")
    drawn = [Web3.to_checksum_address(a) for a in anyone.dispute(dispute_id)["auditors"]]
    if not drawn:
        raise SystemExit(f"dispute {dispute_id} has no drawn auditors: {anyone.dispute(dispute_id)}")
    by_address = {Web3.to_checksum_address(Chain(anyone.w3, anyone.deployment, k).address): i
                  for i, k in enumerate(KEYS)}
    indexes = [int(i) for i in auditors.split(",")] if auditors else [by_address[a] for a in drawn]
    salts = {i: os.urandom(32) for i in indexes}
    fp = bytes.fromhex(fingerprint.removeprefix("0x"))
    for i in indexes:
        chain_for(deployment, i).commit_vote(dispute_id, verdict, fp, salts[i])
        phase(f"committed {i}")
    # Reveals open once every drawn auditor committed (someone else may still be committing).
    deadline = time.monotonic() + 60
    while anyone.dispute(dispute_id)["committed_count"] < len(drawn):
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for the other auditors to commit")
        time.sleep(0.3)
    for i in indexes:
        chain_for(deployment, i).reveal_vote(dispute_id, verdict, fp, salts[i])
        phase(f"revealed {i}")
    if no_resolve:
        return
    d = anyone.dispute(dispute_id)
    while d["faulty_votes"] + d["honest_votes"] + d["abstain_votes"] < len(drawn):
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for the other auditors to reveal")
        time.sleep(0.3)
        d = anyone.dispute(dispute_id)
    outcome = anyone.resolve(dispute_id)
    say(f"PHASE resolved {outcome}")


@cli.command()
@click.argument("deployment")
@click.option("--dispute", "dispute_id", type=int, required=True)
def state(deployment: str, dispute_id: int) -> None:
    """Print a dispute's on-chain record as JSON (for assertions)."""
    chain = chain_for(deployment, 0)
    d = chain.dispute(dispute_id)
    d["votes"] = {a: chain.court.functions.voteOf(dispute_id, a).call()[1] for a in d["auditors"]}
    print(json.dumps(d, default=str))


if __name__ == "__main__":
    cli()
