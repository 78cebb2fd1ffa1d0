"""PaymentEscrow on a real anvil through pollen.payments: vouchers signed in Python and accepted
on chain, the client's tab paying exactly the verified steps, the server's voucher book reading
the deposit from chain and redeeming a batch, forged / stale / over-deposit vouchers refused
(by the book and by the contract), and a reclaim that cannot take a voucher's money."""

from __future__ import annotations

import pytest
from eth_account import Account

from pollen.chain import Chain, ContractReverted
from pollen.escrow import RECLAIM_DELAYS, Escrow, deploy_escrow
from pollen.payments import ClientTab, SignedVoucher, Voucher, VoucherBook, VoucherError, sign_voucher

from chainhelp import advance

pytestmark = pytest.mark.anvil
ETHER = 10**18
FEE_BPS = 100
PRICE = 10**12  # wei per block per token


@pytest.fixture(scope="module")
def escrow_address(roles, keys):
    owner = roles["owner"]
    return deploy_escrow(owner.w3, Account.from_key(keys[0]), owner.deployment.contracts["ServerRegistry"],
                         fee_bps=FEE_BPS, reclaim_delay=RECLAIM_DELAYS["anvil"])


@pytest.fixture(scope="module")
def servers(roles, signers):
    """op1 and op2 registered on the whole 8-block version, each with a price."""
    owner = roles["owner"]
    model = owner.create_model("pay-llama")
    version = owner.publish_version(model, "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", 8, 0, 10_000)
    for i, name in enumerate(["op1", "op2"]):
        roles[name].stake(2 * ETHER)
        roles[name].register(signers[i].address, f"grpc://127.0.0.1:{31400 + i}", version, 0, 8, 50)
    return ["op1", "op2"]


@pytest.fixture(scope="module")
def pay(roles, deployment, keys, escrow_address, servers):
    """Escrow handles: servers op1, op2 (priced) and clients c1, c2 (anvil dev keys 6, 7)."""
    out = {n: Escrow(roles[n], escrow_address) for n in servers}
    for i, n in ((6, "c1"), (7, "c2")):
        out[n] = Escrow(Chain.connect(deployment, private_key=keys[i]), escrow_address)
    for n in servers:
        out[n].set_price(PRICE, 10**16)
    return out


def balance_invariant(e: Escrow) -> None:
    f = e.contract.functions
    held = e.chain.w3.eth.get_balance(e.address)
    assert held == f.totalDeposits().call() + f.totalEarned().call() + f.auditPool().call()


def test_python_voucher_is_redeemed_on_chain(pay, keys, tmp_path):
    server, client = pay["op1"], pay["c1"]
    client.allocate({server.chain.address: ETHER}, value=ETHER)
    price, limit = client.terms(server.chain.address)
    assert (price, limit) == (PRICE, 10**16)
    tab = ClientTab(keys[6], server.chain.address, client.domain(), price)
    book = VoucherBook(server.chain.address, server.domain(), server.reader(), tmp_path / "book.json", limit)
    for step in range(5):  # five verified steps of 8 blocks x 3 tokens
        signed = tab.pay(bytes([step + 1]) * 32, blocks=8, tokens=3)
        assert server.contract.functions.hashVoucher(signed.voucher.as_tuple()).call() == signed.voucher.digest(
            server.domain())
        book.accept(signed)
    owed = 5 * PRICE * 8 * 3
    assert book.paid(client.chain.address) == owed and not book.behind(client.chain.address, owed)
    earned = server.redeem(book.to_redeem())
    assert earned == owed - owed * FEE_BPS // 10_000 == server.earned(server.chain.address)
    assert client.lane(client.chain.address, server.chain.address)["amount"] == ETHER - owed
    assert book.to_redeem() == [] and book.unredeemed() == 0
    balance_invariant(server)


def test_forged_stale_and_over_deposit_vouchers_are_refused(pay, keys, tmp_path):
    server, client = pay["op2"], pay["c2"]
    client.allocate({server.chain.address: ETHER}, value=ETHER)
    me, them = server.chain.address, client.chain.address
    book = VoucherBook(me, server.domain(), server.reader(), tmp_path / "book.json")
    forged = sign_voucher(Voucher(them, me, 10**15, b"\x00" * 32), server.domain(), keys[5])
    with pytest.raises(VoucherError, match="not signed by its client"):
        book.accept(forged)
    with pytest.raises(ContractReverted, match="PaymentEscrow_BadSignature"):
        server.redeem([forged])
    good = sign_voucher(Voucher(them, me, 10**15, b"\x00" * 32), server.domain(), keys[7])
    book.accept(good)
    server.redeem([good])
    with pytest.raises(VoucherError, match="stale"):
        book.accept(good)
    with pytest.raises(ContractReverted, match="PaymentEscrow_NothingToRedeem"):
        server.redeem([good])  # replay pays nothing
    too_much = sign_voucher(Voucher(them, me, 2 * ETHER, b"\x00" * 32), server.domain(), keys[7])
    with pytest.raises(VoucherError, match="over deposit"):
        book.accept(too_much)
    # the same client's 1 ETH cannot also back a voucher to op1: op1 has no lane from it
    op1 = pay["op1"]
    book1 = VoucherBook(op1.chain.address, op1.domain(), op1.reader(), tmp_path / "book1.json")
    with pytest.raises(VoucherError, match="over deposit"):
        book1.accept(sign_voucher(Voucher(them, op1.chain.address, ETHER, b"\x00" * 32), op1.domain(), keys[7]))
    other_server = SignedVoucher(Voucher(them, pay["op1"].chain.address, 10**15, b"\x00" * 32), good.signature)
    with pytest.raises(ContractReverted, match="PaymentEscrow_NotVoucherServer"):
        server.redeem([other_server])
    balance_invariant(server)


def test_reclaim_cannot_take_a_held_voucher(pay, keys, tmp_path):
    server, client = pay["op1"], pay["c2"]
    me, them = server.chain.address, client.chain.address
    client.allocate({me: ETHER}, value=ETHER)
    start = client.lane(them, me)["amount"]
    book = VoucherBook(me, server.domain(), server.reader(), tmp_path / "book.json")
    held = sign_voucher(Voucher(them, me, start // 2, b"\x00" * 32), server.domain(), keys[7])
    book.accept(held)
    client.announce_reclaim(me, start)
    with pytest.raises(ContractReverted, match="PaymentEscrow_ReclaimLocked"):
        client.reclaim(me)
    # the book now counts nothing more from this client, and puts it first in the batch
    later = sign_voucher(Voucher(them, me, start // 2 + 1, b"\x00" * 32), server.domain(), keys[7])
    with pytest.raises(VoucherError, match="over deposit"):
        book.accept(later)
    assert book.to_redeem(min_amount=10**30) == [held]
    advance(server.chain, seconds=RECLAIM_DELAYS["anvil"] - 30)
    server.redeem(book.to_redeem())
    advance(client.chain, seconds=60)
    before = client.chain.w3.eth.get_balance(them)
    receipt = client.reclaim(me)
    gas = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert client.chain.w3.eth.get_balance(them) == before + start - start // 2 - gas
    balance_invariant(server)


def test_batch_of_clients_then_spend_and_withdraw(pay, keys):
    server = pay["op2"]
    me = server.chain.address
    batch = []
    for name, key in (("c1", keys[6]), ("c2", keys[7])):
        pay[name].allocate({me: ETHER}, value=ETHER)
        done = server.contract.functions.redeemed(pay[name].chain.address, me).call()
        batch.append(sign_voucher(Voucher(pay[name].chain.address, me, done + 10**16, b"\x00" * 32),
                                  server.domain(), key))
    earned_before = server.earned(me)
    assert server.redeem(batch) == 2 * (10**16 - 10**14)
    server.spend_earned(10**16)  # pay op1 with what op2 earned, as a client
    assert server.balance(me) == 10**16
    server.allocate({pay["op1"].chain.address: 10**16})
    assert server.lane(me, pay["op1"].chain.address)["amount"] == 10**16 and server.balance(me) == 0
    assert server.earned(me) == earned_before + 2 * (10**16 - 10**14) - 10**16
    server.withdraw()
    assert server.earned(me) == 0
    with pytest.raises(ContractReverted, match="PaymentEscrow_NothingToWithdraw"):
        server.withdraw()
    balance_invariant(server)


def test_escrow_script(roles, deployment, signers, keys, tmp_path, servers):  # servers: version 1 exists
    """`ape run escrow`: deploy and save, a client funds a server's lane, the server prices and
    redeems its voucher book file, the client's early lane reclaim is refused by name, an
    unallocated deposit comes back at once."""
    import json

    from test_ape_scripts import ape_run

    dep = tmp_path / "deployment.json"
    deployment.save(dep)
    rpc = deployment.rpc

    def run(*args, account):
        res = ape_run("escrow", *args, "--account", account, "--deployment", str(dep), network=rpc)
        return res.returncode, res.stdout + res.stderr

    code, out = run("deploy", "--save", account="TEST::0")
    assert code == 0, out
    address = json.loads(dep.read_text())["contracts"]["PaymentEscrow"]
    op3 = roles["op3"]
    op3.stake(2 * ETHER)
    op3.register(signers[2].address, "grpc://127.0.0.1:31402", 1, 0, 8, 50)
    code, out = run("price", "7", "--credit-limit", "0.01", account="TEST::3")
    assert code == 0 and "price 7 wei/block-token" in out, out
    code, out = run("deposit", "0.5", "--server", op3.address, account="TEST::8")
    assert code == 0 and f"lane for {op3.address} 0.5" in out, out
    server = Escrow(op3, address)
    client = Account.from_key(keys[8]).address
    book = VoucherBook(op3.address, server.domain(), server.reader(), tmp_path / "book.json")
    book.accept(sign_voucher(Voucher(client, op3.address, 10**17, b"\x00" * 32), server.domain(), keys[8]))
    code, out = run("redeem", str(tmp_path / "book.json"), account="TEST::3")
    assert code == 0 and "redeemed 1 vouchers: 0.1 gross, 0.001 fee" in out, out
    assert server.earned(op3.address) == 10**17 - 10**15
    code, out = run("redeem", str(tmp_path / "book.json"), account="TEST::3")
    assert code != 0 and "nothing in" in out
    code, out = run("announce-withdraw", "0.4", "--server", op3.address, account="TEST::8")
    assert code == 0, out
    code, out = run("withdraw", "--server", op3.address, account="TEST::8")
    assert code != 0 and "PaymentEscrow_ReclaimLocked" in out
    code, out = run("deposit", "0.2", account="TEST::8")  # unallocated: back at once
    assert code == 0 and "deposit 0.2 unallocated" in out, out
    code, out = run("withdraw", account="TEST::8")
    assert code == 0 and "withdrew 0.2" in out, out
