"""Gas of PaymentEscrow on a real anvil, and the CPU cost of a voucher per step.

    .venv/bin/python benchmarks/gas_payments.py

Gas is deterministic for a given compiler, settings and call path, so one run suffices. A
client deposits and sets part aside per server (a lane) once; a redemption is measured for a batch of 1 and of 20 vouchers (20 clients paying one server), both
the first time each (client, server) pair is redeemed (cold storage) and again later (warm).
A voucher is cumulative, so one redemption pays for any number of steps: the per-step gas is
the redemption's gas divided by the steps it covers (100 and 1,000 steps). The voucher's CPU
cost is signing (client) plus verifying (server: recover the signer) one voucher, the work done
per paid step; compare it with a decode step's latency.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the project root, for `pollen` (after any PYTHONPATH override)
    sys.path.append(str(ROOT))

from eth_account import Account  # noqa: E402

from devstack.anvil import dev_keys, start_anvil  # noqa: E402
from pollen.chain import Chain  # noqa: E402
from pollen.deploy import Parameters, deploy_all  # noqa: E402
from pollen.escrow import Escrow, deploy_escrow  # noqa: E402
from pollen.payments import (ClientTab, PaymentDomain, Voucher, recover_voucher_signer, redeem_args,  # noqa: E402
                             sign_voucher)

ETHER = 10**18
CID = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"
N_CLIENTS = 20


def _vouchers(escrow: Escrow, clients: list[Chain], keys: list[str], server: str, amount: int) -> list:
    domain = escrow.domain()
    out = []
    for c, k in zip(clients, keys):
        done = escrow.contract.functions.redeemed(c.address, server).call()
        out.append(sign_voucher(Voucher(c.address, server, done + amount, b"\x01" * 32), domain, k))
    return out


def _redeem_gas(escrow: Escrow, vouchers: list) -> int:
    fn = escrow.contract.functions.redeem(*redeem_args(vouchers), escrow.fee_bps())
    return escrow.chain.transact(fn, "redeem")["gasUsed"]


def measure() -> dict[str, int]:
    gas: dict[str, int] = {}
    with start_anvil(accounts=N_CLIENTS + 3) as node:
        dep = deploy_all(node.rpc, params=Parameters(), log=lambda *_: None)
        keys = dev_keys(N_CLIENTS + 3)
        owner, server_c = Chain.connect(dep, private_key=keys[0]), Chain.connect(dep, private_key=keys[1])
        address = deploy_escrow(owner.w3, Account.from_key(keys[0]), dep.contracts["ServerRegistry"])
        version = owner.publish_version(owner.create_model("m"), CID, 8, 0, 10_000)
        server_c.stake(2 * ETHER)
        server_c.register(server_c.address, "grpc://127.0.0.1:31330", version, 0, 8, 40)
        server = Escrow(server_c, address)
        client_keys = keys[3:]
        clients = [Chain.connect(dep, private_key=k) for k in client_keys]
        pay = [Escrow(c, address) for c in clients]

        gas["setPrice"] = server.set_price(10**9, 10**16)["gasUsed"]
        me = server_c.address
        gas["deposit (first)"] = pay[0].deposit(ETHER)["gasUsed"]
        gas["deposit (top-up)"] = pay[0].deposit(ETHER)["gasUsed"]
        gas["allocate (1 new lane, from the deposit)"] = pay[0].allocate({me: ETHER})["gasUsed"]
        gas["allocate (deposit + 1 new lane, one tx)"] = pay[1].allocate({me: ETHER}, value=ETHER)["gasUsed"]
        others = {Account.from_key(bytes([0x50 + i]) * 32).address: ETHER // 10 for i in range(5)}
        gas["allocate (deposit + 5 new lanes, one tx)"] = pay[2].allocate(others, value=ETHER // 2)["gasUsed"]
        for p in pay[2:]:
            p.allocate({me: ETHER}, value=ETHER)
        gas["redeem 1 voucher (the server's first: earned and pool slots)"] = _redeem_gas(server, _vouchers(server, clients[:1], client_keys[:1], me, 10**15))
        gas["redeem 1 voucher (later)"] = _redeem_gas(server, _vouchers(server, clients[:1], client_keys[:1], me, 10**15))
        first20 = _redeem_gas(server, _vouchers(server, clients[1:] + clients[:1], client_keys[1:] + client_keys[:1],
                                                me, 10**15))
        gas["redeem 20 vouchers (first of 19 lanes)"] = first20
        later20 = _redeem_gas(server, _vouchers(server, clients, client_keys, me, 10**15))
        gas["redeem 20 vouchers (later)"] = later20
        gas["  per voucher in a batch of 20 (later)"] = later20 // N_CLIENTS
        one = gas["redeem 1 voucher (later)"]
        gas["  per step, 1 voucher covering 100 steps"] = one // 100
        gas["  per step, 1 voucher covering 1,000 steps"] = one // 1000
        gas["spendEarned"] = server.spend_earned(10**14)["gasUsed"]
        gas["withdraw (earnings)"] = server.withdraw()["gasUsed"]
        gas["withdrawDeposit (unallocated, no delay)"] = pay[0].withdraw_deposit(ETHER)["gasUsed"]
        gas["announceReclaim (a lane)"] = pay[0].announce_reclaim(me, ETHER // 2)["gasUsed"]
        owner.w3.provider.make_request("evm_increaseTime", [601])
        owner.w3.provider.make_request("anvil_mine", [1])
        gas["reclaim (a lane, after the delay)"] = pay[0].reclaim(me)["gasUsed"]
        own = Escrow(owner, address)
        own.set_audit_payer(owner.address)
        fn = own.contract.functions.credit([c.address for c in clients[:3]], 10**12)
        gas["credit 3 auditors"] = owner.transact(fn, "credit")["gasUsed"]
    return gas


def voucher_cpu(n: int = 500) -> tuple[float, float]:
    """Microseconds per paid step: the client's (charge a receipt, sign the next voucher) and
    the server's (recover the signer: the CPU part of VoucherBook.accept)."""
    key = Account.from_key(b"\x31" * 32)
    tab = ClientTab(key.key, "0x" + "22" * 20, PaymentDomain(chain_id=31337, escrow="0x" + "e5" * 20), price=10**9)
    start = time.perf_counter()
    signed = [tab.pay(i.to_bytes(32, "big"), blocks=8, tokens=1) for i in range(n)]
    client = (time.perf_counter() - start) / n * 1e6
    start = time.perf_counter()
    for s in signed:
        recover_voucher_signer(s, tab.domain)
    return client, (time.perf_counter() - start) / n * 1e6


def main() -> None:
    gas = measure()
    width = max(len(k) for k in gas)
    print(f"| {'PaymentEscrow operation'.ljust(width)} | gas |")
    print(f"|{'-' * (width + 2)}|----:|")
    for name, value in gas.items():
        print(f"| {name.ljust(width)} | {value:,} |")
    runs = sorted(voucher_cpu() for _ in range(5))
    client = sorted(r[0] for r in runs)[2]
    server = sorted(r[1] for r in runs)[2]
    print(f"\nper paid step (Python, 1 core, median of 5 x 500): client charge + sign {client:.0f} us, "
          f"server verify {server:.0f} us")


if __name__ == "__main__":
    main()
