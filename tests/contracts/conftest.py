"""Role and factory fixtures for the contract suite (runs on Ape's in-process chain, and on a
real anvil with `--network ethereum:local:foundry`)."""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
from pathlib import Path

import pytest
from eth_account import Account

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:  # the project root, for `pollen` (after any PYTHONPATH override)
    sys.path.append(_ROOT)

from pollen.deploy import Parameters  # noqa: E402
from pollen.receipts import KIND_INFERENCE, Receipt, ReceiptDomain, sign_receipt  # noqa: E402

ETHER = 10**18
PARAMS = Parameters()
CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
EVIDENCE = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"
FAULTY, HONEST, ABSTAIN = 1, 2, 3  # DisputeCourt.revealVote verdict codes


def verdict_code(v) -> int:
    """True -> faulty, False -> honest, "abstain" (or a code) as is."""
    if v is True or v == "faulty":
        return FAULTY
    if v is False or v == "honest":
        return HONEST
    if v == "abstain":
        return ABSTAIN
    return int(v)


def fingerprint(auditor: str, verdict=None) -> bytes:
    """A deterministic stand-in for the hash of what `auditor` recomputed."""
    from eth_utils import keccak

    return keccak(text=f"fingerprint:{str(auditor).lower()}:{verdict}")


@pytest.fixture(scope="session", autouse=True)
def _no_debug_log_traces():
    """Ape traces every transaction to a contract to print its console.log output; these
    contracts log nothing, and the trace costs ~20 ms per transaction on py-evm."""
    from ape.api.transactions import ReceiptAPI

    saved = ReceiptAPI.show_debug_logs
    ReceiptAPI.show_debug_logs = lambda self: None
    yield
    ReceiptAPI.show_debug_logs = saved


@pytest.fixture(scope="session", autouse=True)
def _decode_every_custom_error():
    """Ape 0.8's in-process provider decodes a custom error from eth-tester's message only
    when the revert data reads b'...'; Python writes bytes holding a single quote and no double
    quote as b"...", so about one revert in eight whose error has a random bytes32 argument
    (a commitment, an incident) came back as a bare ContractLogicError. Hand such data to Ape
    as hex, which it decodes."""
    from ast import literal_eval

    from ape_test.provider import LocalProvider
    from eth_tester.exceptions import TransactionFailed
    from eth_utils import to_hex

    original = LocalProvider.get_virtual_machine_error

    @functools.wraps(original)
    def get_virtual_machine_error(self, exception, **kwargs):
        if isinstance(exception, TransactionFailed):
            data = str(exception).split("execution reverted: ")[-1]
            if data.startswith('b"') and data.endswith('"'):
                exception = TransactionFailed(f"execution reverted: {to_hex(literal_eval(data))}")
        return original(self, exception, **kwargs)

    LocalProvider.get_virtual_machine_error = get_virtual_machine_error
    yield
    LocalProvider.get_virtual_machine_error = original


@pytest.fixture(scope="session")
def owner(accounts):
    return accounts[0]


@pytest.fixture(scope="session")
def operators(accounts):
    return accounts[1:6]


@pytest.fixture(scope="session")
def operator(operators):
    return operators[0]


@pytest.fixture(scope="session")
def challenger(accounts):
    return accounts[6]


@pytest.fixture(scope="session")
def stranger(accounts):
    return accounts[7]


@pytest.fixture(scope="session")
def signer_keys():
    """Hot receipt keys (distinct from operator accounts), one per operator."""
    return [Account.from_key(bytes([i + 1]) * 32) for i in range(5)]


@pytest.fixture
def vault(project, owner):
    return project.StakeVault.deploy(PARAMS.min_stake, PARAMS.unbonding_period, owner, sender=owner)


@pytest.fixture
def versions(project, owner):
    return project.ModelVersionRegistry.deploy(sender=owner)


@pytest.fixture
def registry(project, owner, vault, versions):
    return project.ServerRegistry.deploy(vault, versions, sender=owner)


@pytest.fixture
def court(project, owner, vault, registry):
    court = project.DisputeCourt.deploy(vault, registry, PARAMS.court_tuple(), owner, sender=owner)
    vault.wire(court, registry, sender=owner)
    return court


@pytest.fixture
def version_id(versions, owner):
    """An 8-block model version."""
    versions.createModel("tiny-llama", sender=owner)
    versions.publishVersion(1, CID, 8, 0, 10_000, sender=owner)
    return 1


@pytest.fixture
def staked_server(vault, registry, version_id, court):
    """Factory: stake `amount` and register `account` with `signer` on [first, last)."""

    def make(account, signer, first=0, last=8, amount=2 * ETHER, port=31330):
        if amount:
            vault.stake(value=amount, sender=account)
        registry.register(signer.address, f"grpc://127.0.0.1:{port}", version_id, first, last, 50,
                          sender=account)
        return account

    return make


@pytest.fixture
def swarm(staked_server, operators, signer_keys):
    """Five registered servers on the whole 8-block version."""
    for i, op in enumerate(operators):
        staked_server(op, signer_keys[i], port=31330 + i)
    return operators


@pytest.fixture
def domain(court, chain):
    return ReceiptDomain(chain_id=chain.chain_id, court=court.address)


@pytest.fixture
def signed_receipt(domain, chain, version_id):
    """Factory: a receipt for `server`, signed by `key` (a hot signer), dated now by default, in
    a fresh session unless `session` (32 bytes) is given."""

    def make(server, key, first=0, last=8, issued_at=None, step=0, dom=None, term=0, kind=KIND_INFERENCE,
             session=None):
        r = Receipt(server=server.address, version_id=version_id, first_block=first,
                    last_block=last, term=term, kind=kind, session_id=session or os.urandom(32), step=step,
                    input_hash=os.urandom(32), output_hash=os.urandom(32),
                    blocks_root=os.urandom(32),
                    issued_at=issued_at if issued_at is not None else chain.blocks.head.timestamp)
        return r, sign_receipt(r, dom or domain, key.key)

    return make


def commit_opening(court, receipt, who, block=None, cid=EVIDENCE, salt=None) -> bytes:
    """Commit `who`'s opening over `receipt` (mined in its own block); returns the salt."""
    salt = salt or os.urandom(32)
    block = receipt.first_block if block is None else block
    c = court.openingCommitment(who.address, court.hashReceipt(receipt.as_tuple()), cid, block, salt)
    court.commitOpening(c, sender=who)
    return salt


def open_tx(court, receipt, sig, who, block=None, value=None, cid=EVIDENCE, salt=None):
    """Commit then reveal an opening (two blocks); returns the reveal's transaction."""
    block = receipt.first_block if block is None else block
    salt = commit_opening(court, receipt, who, block, cid, salt)
    value = court.bondFor(receipt.server) if value is None else value
    return court.openDispute(receipt.as_tuple(), sig, cid, block, salt, value=value, sender=who)


@pytest.fixture
def open_dispute(court, chain):
    """Factory: open a dispute over (receipt, sig) from `who` (commit, then reveal), naming
    `block` (default: the receipt's first block); returns the dispute id."""

    def make(receipt, sig, who, block=None, value=None, cid=EVIDENCE):
        open_tx(court, receipt, sig, who, block, value, cid)
        return court.disputeCount()

    return make


def vault_invariant(vault, chain) -> None:
    """balance == staked + unbonding + credits + escrow + treasury."""
    total = (vault.totalStaked() + vault.totalUnbonding() + vault.totalCredits() + vault.escrow()
             + vault.treasury())
    balance = chain.provider.get_balance(vault.address)
    if balance != total:
        raise AssertionError(f"vault invariant broken: balance {balance} != accounted {total}")


@pytest.fixture
def vote():
    """Factory: commit then reveal each auditor's verdict (True = faulty, False = honest,
    "abstain", None = silent: never commits), each bound to `fingerprint(auditor, verdict)`."""

    def run(court, dispute_id, verdicts: dict, accounts_by_address: dict, reveal=True):
        salts = {}
        for addr, v in verdicts.items():
            if v is None:
                continue
            salts[addr] = os.urandom(32)
            c = court.commitmentOf(dispute_id, addr, verdict_code(v), fingerprint(addr, verdict_code(v)),
                                   salts[addr])
            court.commitVote(dispute_id, c, sender=accounts_by_address[addr])
        if reveal:
            for addr, salt in salts.items():
                code = verdict_code(verdicts[addr])
                court.revealVote(dispute_id, code, fingerprint(addr, code), salt, sender=accounts_by_address[addr])
        return salts

    return run


def draw(court, chain, dispute_id):
    """Mine past the draw block and draw; returns the auditors drawn for the dispute's current
    round ([] when the draw settled it instead: too few candidates, or a lapse)."""
    import ape

    chain.mine(PARAMS.draw_delay_blocks + 1)
    tx = court.drawAuditors(dispute_id, sender=ape.accounts.test_accounts[9])  # anyone may draw
    drawn = [e for e in tx.events if e.event_name == "AuditorsDrawn"]
    return list(drawn[0].auditors) if drawn else []


def params_with(**changes) -> Parameters:
    """PARAMS with some fields changed (pass `.court_tuple()` to setParams)."""
    return dataclasses.replace(PARAMS, **changes)


def fresh_accounts(funder, n, fund=20 * ETHER):
    """n newly generated test accounts, each funded with `fund` wei by `funder`."""
    import ape

    out = []
    for _ in range(n):
        a = ape.accounts.test_accounts.generate_test_account()
        funder.transfer(a, fund)
        out.append(a)
    return out


@pytest.fixture
def crowd(vault, registry, version_id, owner):
    """Four more registered servers (2 ETH each, receipts signed by their operator keys), so an
    appeal round finds fresh auditors besides the swarm's."""
    extra = fresh_accounts(owner, 4)
    for i, a in enumerate(extra):
        vault.stake(value=2 * ETHER, sender=a)
        registry.register(a.address, f"grpc://10.0.1.{i}:31330", version_id, 0, 8, 50, sender=a)
    return extra


# ---------------------------------------------------------------------------------- payments

ESCROW_FEE_BPS = 100  # 1 % protocol fee on redemptions
RECLAIM_DELAY = 3600  # seconds between announcing a reclaim and taking it


@pytest.fixture
def escrow(project, owner, registry):
    """A PaymentEscrow over the registry: 1 % fee, 1 h reclaim delay, the owner as audit payer."""
    e = project.PaymentEscrow.deploy(registry, ESCROW_FEE_BPS, RECLAIM_DELAY, owner, sender=owner)
    e.setAuditPayer(owner, sender=owner)
    return e


@pytest.fixture
def pay_domain(escrow, chain):
    from pollen.payments import PaymentDomain

    return PaymentDomain(chain_id=chain.chain_id, escrow=escrow.address)


@pytest.fixture
def voucher(pay_domain):
    """Factory: a voucher `client` -> `server` for `cumulative` wei, signed by `signer` (default
    the client: an Ape test account) under `dom` (default this escrow's domain)."""
    from pollen.payments import Voucher, sign_voucher

    def make(client, server, cumulative, receipts=b"\x00" * 32, dom=None, signer=None):
        v = Voucher(client.address, str(getattr(server, "address", server)), cumulative, receipts)
        return sign_voucher(v, dom or pay_domain, (signer or client).private_key)

    return make


def escrow_invariant(escrow, chain) -> None:
    """balance == deposits + earned + audit pool."""
    total = escrow.totalDeposits() + escrow.totalEarned() + escrow.auditPool()
    balance = chain.provider.get_balance(escrow.address)
    if balance != total:
        raise AssertionError(f"escrow invariant broken: balance {balance} != accounted {total}")


class HeadStorage:
    """Storage words and balances at the chain's head for the stateful runs, which check books
    after every step: read from py-evm's state itself on Ape's in-process chain (microseconds;
    a view call through web3 executes a transaction and costs milliseconds), through
    eth_getStorageAt on any other node."""

    def __init__(self, w3):
        self._w3 = w3
        tester = getattr(w3.provider, "ethereum_tester", None)
        self._chain = tester.backend.chain if tester is not None else None
        self._state = None

    def refresh(self) -> "HeadStorage":
        """Read the head as it is now (call once per check: later writes are not seen)."""
        if self._chain is not None:
            self._state = self._chain.get_vm(self._chain.get_canonical_head()).state
        return self

    def word(self, address: str, slot: int) -> int:
        if self._state is None:
            return int.from_bytes(self._w3.eth.get_storage_at(address, slot), "big")
        return self._state.get_storage(bytes.fromhex(address[2:]), slot)

    def balance(self, address: str) -> int:
        if self._state is None:
            return self._w3.eth.get_balance(address)
        return self._state.get_balance(bytes.fromhex(address[2:]))


def mapping_slot(slot: int, *keys: str) -> int:
    """The storage slot of `m[k1][k2]...` for a mapping declared at `slot`, address keys."""
    from eth_utils import keccak

    for key in keys:
        slot = int.from_bytes(keccak(bytes(12) + bytes.fromhex(key[2:]) + slot.to_bytes(32, "big")), "big")
    return slot


class EscrowBooks:
    """PaymentEscrow's books straight from storage. Its layout (OZ 5.4): EIP712's two fallback
    strings (0, 1), Ownable (2), Ownable2Step (3), ReentrancyGuard (4), feeBps|reclaimDelay|
    auditPayer (5), then totalDeposits, totalEarned, auditPool, balanceOf, _lanes, _terms,
    earned; a lane's first word is amount|redeemed (uint128 each). `check_layout` compares every
    read with the getters, so a changed layout fails loudly instead of checking nothing."""

    TOTAL_DEPOSITS, TOTAL_EARNED, AUDIT_POOL, BALANCE_OF, LANES, EARNED = 6, 7, 8, 9, 10, 12
    LOW = 2**128 - 1

    def __init__(self, w3, escrow):
        self.address = str(escrow.address)
        self._escrow = escrow
        self._storage = HeadStorage(w3)

    def refresh(self) -> "EscrowBooks":
        self._storage.refresh()
        return self

    def _word(self, slot: int) -> int:
        return self._storage.word(self.address, slot)

    def total_deposits(self) -> int:
        return self._word(self.TOTAL_DEPOSITS)

    def total_earned(self) -> int:
        return self._word(self.TOTAL_EARNED)

    def audit_pool(self) -> int:
        return self._word(self.AUDIT_POOL)

    def balance(self) -> int:
        return self._storage.balance(self.address)

    def balance_of(self, who: str) -> int:
        return self._word(mapping_slot(self.BALANCE_OF, who))

    def earned(self, who: str) -> int:
        return self._word(mapping_slot(self.EARNED, who))

    def lane(self, client: str, server: str) -> tuple[int, int]:
        """(amount, redeemed) of client's lane for server."""
        w = self._word(mapping_slot(self.LANES, client, server))
        return w & self.LOW, w >> 128

    def check_layout(self, clients, servers) -> None:
        """Every read above equals its getter (for these accounts), at the head."""
        e = self.refresh()._escrow
        pairs = [((self.total_deposits(), self.total_earned(), self.audit_pool()),
                  (e.totalDeposits(), e.totalEarned(), e.auditPool()))]
        for a in [*clients, *servers]:
            pairs.append(((self.balance_of(a), self.earned(a)), (e.balanceOf(a), e.earned(a))))
        for c in clients:
            for s in servers:
                lane = e.laneOf(c, s)
                pairs.append((self.lane(c, s), (lane.amount, lane.redeemed)))
        for got, want in pairs:
            if got != want:
                raise AssertionError(f"PaymentEscrow's storage layout changed: read {got}, getters say {want}")


# ---------------------------------------------------------------------------------- benchmarks

BENCH_K, BENCH_QUORUM, BENCH_DRAW_DELAY = 4, 3, 2  # evaluators per request, reveals needed, blocks
BENCH_COMMIT, BENCH_REVEAL = 600, 600  # seconds
BENCH_MIN_FEE = 10**15
DATASET = "bafkreid7qoywk77r7rj3slobqfekdvs57qwuwh5d2z3sqsw52iabe3mqne"


@pytest.fixture
def benchmarks(project, owner, versions, registry):
    """A BenchmarkRegistry over the fixtures' versions and server registry: 4 evaluators per
    request, 3 reveals needed, draw 2 blocks after the request, 10 min to commit and to reveal."""
    return project.BenchmarkRegistry.deploy(versions, registry, BENCH_K, BENCH_QUORUM, BENCH_DRAW_DELAY,
                                            BENCH_COMMIT, BENCH_REVEAL, BENCH_MIN_FEE, sender=owner)
