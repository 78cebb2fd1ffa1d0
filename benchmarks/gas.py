"""Gas per operation on a real anvil, for the README's table.

    .venv/bin/python benchmarks/gas.py                # print the table
    .venv/bin/python benchmarks/gas.py --write-readme # also replace the table in README.md

Gas is deterministic for a given compiler, settings and call path, so one run suffices; each
operation is measured on its usual path (first-time registration, a K = 3 dispute naming one
block, fingerprinted votes, ...). The draw is measured with 10 and with --scale (default
10,000) registered servers (tickets): registering them takes about a minute on anvil.
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

from devstack.anvil import dev_keys, start_anvil  # noqa: E402
from pollen.chain import Chain  # noqa: E402
from pollen.deploy import Parameters, deploy_all  # noqa: E402 (anvil preset)
from pollen.receipts import KIND_INFERENCE, Receipt, sign_receipt  # noqa: E402

ETHER = 10**18
EIP170 = 24_576  # runtime code limit (bytes)
SIZE_MARGIN = 1_536  # what DisputeCourt keeps free for the next fix
TARGETS = {"register": 200_000, "openDispute": 250_000, "commitVote": 80_000,
           "revealVote": 80_000, "resolve (faulty, K=3)": 300_000}
CID = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"


def code_sizes(chain: Chain) -> dict[str, int]:
    """Runtime code bytes of the deployed contracts (CourtBounds: the one the court created)."""
    where = dict(chain.deployment.contracts, CourtBounds=chain.court.functions.bounds().call())
    return {name: len(chain.w3.eth.get_code(address)) for name, address in where.items()}


def measure(scale: int, sizes: dict[str, int] | None = None) -> dict[str, int]:
    gas: dict[str, int] = {}
    with start_anvil(accounts=12) as node:
        dep = deploy_all(node.rpc, params=Parameters(), log=lambda *_: None)
        keys = dev_keys(12)
        c = [Chain.connect(dep, private_key=k) for k in keys]
        owner, chal, ops = c[0], c[1], c[2:12]  # ten servers: ten tickets
        if sizes is not None:
            sizes.update(code_sizes(owner))
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
            salt, court = os.urandom(32), chal.court.functions
            h = court.openingCommitment(chal.address, court.hashReceipt(r.as_tuple()).call(), CID, 7, salt).call()
            note("commitOpening", chal.transact(court.commitOpening(h), "x"))
            node_mine(chal, 1)  # the reveal must come in a later block
            tx = chal.transact(court.openDispute(r.as_tuple(), sig, CID, 7, salt), "x",
                               value=chal.bond_for(accused.address))
            note("openDispute", tx)
            return court.disputeCount().call()

        def audit(did: int, verdicts: list[str], label: str, draw_label: str = "drawAuditors (K=3, 10 servers)") -> None:
            node_mine(chal, 3)
            note(draw_label, chal.transact(chal.court.functions.drawAuditors(did), "x"))
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

        audit(dispute(ops[0]), ["faulty", "faulty", "faulty"], "resolve (faulty, K=3)")
        audit(dispute(ops[5]), ["faulty", "faulty", "honest"], "resolve (faulty 2-1, K=3: one incoherent penalised)")
        audit(dispute(ops[0]), ["honest", "honest", "honest"], "resolve (honest, K=3)")
        audit(dispute(ops[0]), ["abstain", "abstain", "abstain"], "resolve (no quorum: all abstain, K=3)")
        note("withdraw", chal.withdraw())
        note("requestUnstake", ops[4].request_unstake(ETHER // 2))
        note("leave", ops[3].leave())
        if scale > len(ops):
            register_many(node.rpc, dep, scale - len(ops))
            tickets = chal.registry.functions.ticketCount().call()
            if tickets != scale:
                raise click.ClickException(f"{tickets} tickets after registering, expected {scale}")
            did = dispute(ops[1])
            node_mine(chal, 3)
            note(f"drawAuditors (K=3, {scale:,} servers)", chal.transact(chal.court.functions.drawAuditors(did), "x"))
    return gas


def register_many(rpc: str, dep, n: int, batch: int = 400) -> None:
    """Register n more servers (fresh impersonated accounts, 2 ETH stake each) with batched
    JSON-RPC calls; progress on stderr."""
    import requests
    from eth_abi import encode
    from eth_utils import function_signature_to_4byte_selector as sel

    vault, registry = dep.contracts["StakeVault"], dep.contracts["ServerRegistry"]
    stake = "0x" + sel("stake()").hex()
    session, done = requests.Session(), 0

    def rpc_call(method, params):
        reply = session.post(rpc, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}, timeout=300).json()
        if "error" in reply:
            raise click.ClickException(f"{method}: {reply['error']}")
        return reply["result"]

    rpc_call("evm_setAutomine", [False])  # mine full blocks per batch, not one block per tx
    while done < n:
        setup, calls, size = [], [], min(batch, n - done)
        for i in range(done, done + size):
            who = "0x" + (0x5000_0000 + i).to_bytes(20, "big").hex()
            reg = "0x" + (sel("register(address,string,uint64,uint32,uint32,uint64)") + encode(
                ["address", "string", "uint64", "uint32", "uint32", "uint64"],
                [who, f"grpc://10.0.{i // 250 % 250}.{i % 250}:31330", 1, 0, 30, 40])).hex()
            setup += [("anvil_setBalance", [who, hex(10 * ETHER)]), ("anvil_impersonateAccount", [who])]
            calls += [("eth_sendTransaction", [{"from": who, "to": vault, "value": hex(2 * ETHER), "data": stake,
                                                     "nonce": "0x0", "gasPrice": hex(2 * 10**9)}]),
                      ("eth_sendTransaction", [{"from": who, "to": registry, "data": reg, "gas": hex(400_000),
                                                     "nonce": "0x1", "gasPrice": hex(2 * 10**9)}])]
        for part in (setup, calls):  # balances first: a batch's calls may run in any order
            body = [{"jsonrpc": "2.0", "id": k, "method": m, "params": p} for k, (m, p) in enumerate(part)]
            for reply in session.post(rpc, json=body, timeout=300).json():
                if "error" in reply:
                    raise click.ClickException(f"registering servers: {reply['error']}")
        while int(rpc_call("txpool_status", [])["pending"], 16):
            rpc_call("anvil_setNextBlockBaseFeePerGas", [hex(10**9)])  # full blocks would raise it
            rpc_call("evm_mine", [])
        done += size
        click.echo(f"  registered {done:,} more servers", err=True)
    rpc_call("anvil_setNextBlockBaseFeePerGas", [hex(10**9)])
    rpc_call("evm_setAutomine", [True])


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
@click.option("--scale", default=10_000, show_default=True, help="servers registered for the second draw")
def main(write_readme: bool, scale: int) -> None:
    sizes: dict[str, int] = {}
    gas = measure(scale, sizes)
    out = table(gas)
    click.echo(out)
    click.echo("\nruntime code (EIP-170: 24,576 bytes): " + ", ".join(f"{k} {v:,}" for k, v in sizes.items()))
    if sizes["DisputeCourt"] > EIP170 - SIZE_MARGIN:
        click.echo(f"DisputeCourt is within {EIP170 - sizes['DisputeCourt']:,} bytes of EIP-170", err=True)
    click.echo(f"\nreproduce: .venv/bin/python benchmarks/gas.py --scale {scale}  (anvil, solc 0.8.37, optimizer 200 runs)")
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
