"""Gas per operation on a real anvil, for the README's table.

    .venv/bin/python benchmarks/gas.py                # print the table
    .venv/bin/python benchmarks/gas.py --write-readme # also replace the table in README.md

Gas is deterministic for a given compiler, settings and call path, so one run suffices; each
operation is measured on its usual path (first-time registration, a K = 3 dispute naming one
block, fingerprinted votes, ...).
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the project root, for `pollen` (after any PYTHONPATH override)
    sys.path.append(str(ROOT))

import click  # noqa: E402

from pollen.anvil import dev_keys, start_anvil  # noqa: E402
from pollen.chain import Chain  # noqa: E402
from pollen.deploy import Parameters, deploy_all  # noqa: E402
from pollen.receipts import KIND_INFERENCE, Receipt, sign_receipt  # noqa: E402

ETHER = 10**18
TARGETS = {"register": 200_000, "openDispute": 250_000, "commitVote": 80_000,
           "revealVote": 80_000, "resolve (faulty, K=3)": 300_000}
CID = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"


def measure() -> dict[str, int]:
    gas: dict[str, int] = {}
    with start_anvil(accounts=10) as node:
        dep = deploy_all(node.rpc, params=Parameters(), log=lambda *_: None)
        keys = dev_keys(10)
        c = [Chain.connect(dep, private_key=k) for k in keys]
        owner, ops, chal = c[0], c[1:6], c[6]
        note = lambda name, r: gas.__setitem__(name, r["gasUsed"])  # noqa: E731

        note("createModel", owner.transact(owner.versions.functions.createModel("SmolLM2-135M"), "x"))
        note("publishVersion", owner.transact(owner.versions.functions.publishVersion(1, CID, 30, 0, 10_000), "x"))
        for i, op in enumerate(ops):
            r = op.stake(2 * ETHER)
            if i == 0:
                note("stake (first)", r)
            r = op.register(op.address, f"grpc://127.0.0.1:{31330 + i}", 1, 0, 30, 40)
            if i == 0:
                note("register (first server of a version)", r)
            if i == 1:
                note("register", r)  # the usual case: the version's active list exists
        note("update (new span)", ops[0].update_server(ops[0].address, "grpc://127.0.0.1:31330", 1, 0, 15, 40))
        note("publishAdapter", chal.transact(chal.versions.functions.publishAdapter(1, CID, "lora", "chat"), "x"))

        def dispute(accused: Chain) -> int:
            term = accused.current_term(accused.address)  # the latest: its span is [0, 15)
            r = Receipt(server=accused.address, version_id=1, first_block=0, last_block=15, term=term,
                        kind=KIND_INFERENCE, session_id=os.urandom(32), step=3, input_hash=os.urandom(32),
                        output_hash=os.urandom(32), blocks_root=os.urandom(32), issued_at=int(time.time()))
            sig = sign_receipt(r, chal.receipt_domain(), keys[c.index(accused)])
            tx = chal.transact(chal.court.functions.openDispute(r.as_tuple(), sig, CID, 7), "x",
                               value=chal.court_params()["bond"])
            note("openDispute", tx)
            return chal.court.functions.disputeCount().call()

        def audit(did: int, verdicts: list[str], label: str) -> None:
            node_mine(chal, 3)
            note("drawAuditors (K=3)", chal.transact(chal.court.functions.drawAuditors(did), "x"))
            by_addr = {x.address: x for x in c}
            auditors = chal.court.functions.auditorsOf(did).call()
            salts = {a: os.urandom(32) for a in auditors}
            fingerprints = {a: os.urandom(32) for a in auditors}
            for a, v in zip(auditors, verdicts):
                r = by_addr[a].commit_vote(did, v, fingerprints[a], salts[a])
                if label.startswith("resolve (honest"):  # same path as before abstentions
                    note("commitVote", r)
            for a, v in zip(auditors, verdicts):
                r = by_addr[a].reveal_vote(did, v, fingerprints[a], salts[a])
                if label.startswith("resolve (honest"):  # same path as before abstentions
                    note("revealVote", r)
            note(label, chal.transact(chal.court.functions.resolve(did), "x"))

        audit(dispute(ops[0]), ["faulty", "faulty", "honest"], "resolve (faulty, K=3)")
        audit(dispute(ops[0]), ["honest", "honest", "honest"], "resolve (honest, K=3)")
        audit(dispute(ops[0]), ["abstain", "abstain", "abstain"], "resolve (no quorum: all abstain, K=3)")
        note("withdraw", chal.withdraw())
        note("requestUnstake", ops[4].request_unstake(ETHER // 2))
        note("leave", ops[3].leave())
    return gas


def node_mine(chain: Chain, blocks: int) -> None:
    chain.w3.provider.make_request("anvil_mine", [blocks])


def table(gas: dict[str, int]) -> str:
    lines = ["| operation | gas | target |", "|---|---:|---|"]
    for name, used in gas.items():
        target = TARGETS.get(name)
        verdict = "" if target is None else (f"< {target:,} ✓" if used < target else f"< {target:,} ✗ missed")
        lines.append(f"| `{name}` | {used:,} | {verdict} |")
    return "\n".join(lines)


@click.command()
@click.option("--write-readme", is_flag=True, help="replace the gas table in README.md")
def main(write_readme: bool) -> None:
    gas = measure()
    out = table(gas)
    click.echo(out)
    click.echo("\nreproduce: .venv/bin/python benchmarks/gas.py  (anvil, solc 0.8.37, optimizer 200 runs)")
    if write_readme:
        readme = ROOT / "README.md"
        text = readme.read_text()
        new, n = re.subn(r"(<!-- gas-table -->\n).*?(<!-- /gas-table -->)", lambda m: m.group(1) + out + "\n" + m.group(2), text, flags=re.S)
        if n != 1:
            raise click.ClickException("README.md has no <!-- gas-table --> ... <!-- /gas-table --> block")
        readme.write_text(new)
        click.echo("README.md updated")


if __name__ == "__main__":
    main()
