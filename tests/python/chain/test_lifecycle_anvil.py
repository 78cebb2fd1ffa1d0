"""The whole trust lifecycle on a real anvil through pollen.chain: stake, register, a receipt
signed in Python, dispute naming a block, draw, commit and reveal fingerprinted votes, resolve,
slash, withdraw; and a dispute whose auditors all abstain (bond refunded)."""

from __future__ import annotations

import os

import pytest

from pollen.chain import VERDICTS, ChainError, ContractReverted
from pollen.receipts import KIND_BACKWARD, KIND_INFERENCE, Receipt, sign_receipt

from chainhelp import advance

pytestmark = pytest.mark.anvil
ETHER = 10**18


@pytest.fixture(scope="module")
def swarm(roles, signers):
    owner = roles["owner"]
    model = owner.create_model("tiny-llama")
    version = owner.publish_version(model, "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", 8, 0, 10_000)
    for i, name in enumerate(["op1", "op2", "op3", "op4"]):
        op = roles[name]
        op.stake(2 * ETHER)
        op.register(signers[i].address, f"grpc://127.0.0.1:{31330 + i}", version, 0, 8, 50)
    return version


CID = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"


def make_receipt(chain, server, version, step=0, issued_at=None, output=b"\x03" * 32, term=0,
                 kind=KIND_INFERENCE):
    return Receipt(server=server, version_id=version, first_block=0, last_block=8, term=term,
                   kind=kind, session_id=os.urandom(32), step=step, input_hash=b"\x02" * 32,
                   output_hash=output, blocks_root=os.urandom(32),
                   issued_at=issued_at or chain.w3.eth.get_block("latest")["timestamp"])


def fingerprint(auditor: str) -> bytes:
    return bytes.fromhex(auditor[2:].lower()) + b"\xf0" * 12


def test_registered_servers_are_listed(roles, swarm):
    active = roles["owner"].active_servers(swarm)
    assert sorted(active) == sorted(roles[n].address for n in ["op1", "op2", "op3", "op4"])
    info = roles["owner"].server(roles["op1"].address)
    assert info["status"] == "active" and info["first_block"] == 0 and info["last_block"] == 8


def test_court_accepts_python_signature_and_rejects_tampered(roles, signers, swarm):
    court = roles["owner"].court
    r = make_receipt(roles["owner"], roles["op1"].address, swarm)
    sig = sign_receipt(r, roles["owner"].receipt_domain(), signers[0].key)
    assert court.functions.recoverSigner(r.as_tuple(), sig).call() == signers[0].address
    tampered = Receipt(**{**r.__dict__, "output_hash": b"\x04" * 32})
    assert court.functions.recoverSigner(tampered.as_tuple(), sig).call() != signers[0].address
    chal = roles["challenger"]
    with pytest.raises(ChainError, match="not .* registered signer"):
        chal.open_dispute(tampered, sig, "bafy-evidence-cid-000", 0)
    with pytest.raises(ContractReverted) as err:  # the court itself refuses it too
        _open_raw(chal, tampered, sig, "bafy-evidence-cid-000", 0)
    assert err.value.name == "DisputeCourt_SignerNotRegistered"


def test_receipt_naming_wrong_term_or_block_is_refused(roles, signers, swarm):
    chal = roles["challenger"]
    r = make_receipt(chal, roles["op1"].address, swarm, term=1)  # op1 only has term 0
    sig = sign_receipt(r, chal.receipt_domain(), signers[0].key)
    with pytest.raises(ChainError, match="in term 1"):
        chal.open_dispute(r, sig, CID, 0)
    with pytest.raises(ContractReverted) as err:
        _open_raw(chal, r, sig, CID, 0)
    assert err.value.name == "DisputeCourt_SignerNotRegistered"
    good = make_receipt(chal, roles["op1"].address, swarm)
    gsig = sign_receipt(good, chal.receipt_domain(), signers[0].key)
    with pytest.raises(ContractReverted) as err:
        chal.open_dispute(good, gsig, CID, 8)  # span is [0, 8)
    assert err.value.name == "DisputeCourt_BadBlock"


def test_faulty_server_is_slashed_and_everyone_withdraws(roles, signers, swarm):
    chal, accused = roles["challenger"], roles["op1"]
    r = make_receipt(chal, accused.address, swarm, step=5, kind=KIND_BACKWARD)
    sig = sign_receipt(r, chal.receipt_domain(), signers[0].key)
    stake_before = accused.stake_of(accused.address)
    dispute_id = chal.open_dispute(r, sig, CID, 3)
    d = chal.dispute(dispute_id)
    assert (d["block"], d["step"], d["kind"], d["abstain_votes"]) == (3, 5, KIND_BACKWARD, 0)
    assert d["stage"] == "awaiting_draw" and d["first_block"] == 0 and d["last_block"] == 8
    with pytest.raises(ContractReverted) as err:
        accused.request_unstake(ETHER)
    assert err.value.name == "StakeVault_Frozen"

    advance(chal, blocks=3)
    auditors = chal.draw_auditors(dispute_id)
    assert sorted(auditors) == sorted(roles[n].address for n in ["op2", "op3", "op4"])
    by_addr = {roles[n].address: roles[n] for n in ["op2", "op3", "op4"]}
    salts = {a: os.urandom(32) for a in auditors}
    votes = {a: ("faulty" if i != 2 else "honest") for i, a in enumerate(auditors)}  # two faulty, one honest
    for a in auditors:
        by_addr[a].commit_vote(dispute_id, votes[a], fingerprint(a), salts[a])
    with pytest.raises(ContractReverted) as err:  # a fingerprint other than the committed one
        by_addr[auditors[0]].reveal_vote(dispute_id, votes[auditors[0]], b"\x00" * 32, salts[auditors[0]])
    assert err.value.name == "DisputeCourt_CommitmentMismatch"
    for a in auditors:
        by_addr[a].reveal_vote(dispute_id, votes[a], fingerprint(a), salts[a])
    revealed = chal.events("DisputeCourt", "VoteRevealed")
    assert {(e["args"]["auditor"], e["args"]["verdict"], bytes(e["args"]["fingerprint"])) for e in revealed
            if e["args"]["disputeId"] == dispute_id} == {
        (a, VERDICTS[votes[a]], fingerprint(a)) for a in auditors}
    assert chal.resolve(dispute_id) == "faulty"
    with pytest.raises(ContractReverted) as err:  # one incident (server, session) is slashed once
        chal.open_dispute(r, sig, CID, 4)
    assert err.value.name == "DisputeCourt_IncidentSlashed"

    stake_after = accused.stake_of(accused.address)
    assert stake_after == stake_before // 2
    assert accused.server(accused.address)["status"] == "active"  # 1 ETH left == min stake
    credit = chal.credits_of(chal.address)
    params = chal.court_params()
    assert credit == d["bond"] + (stake_before // 2) * params["finder_bps"] // 10_000
    balance = chal.w3.eth.get_balance(chal.address)
    chal.withdraw()
    assert chal.w3.eth.get_balance(chal.address) > balance + credit - ETHER // 100
    winners = [a for a in auditors if votes[a] == "faulty"]
    for a in winners:
        assert by_addr[a].credits_of(a) > 0
        by_addr[a].withdraw()
    loser = [a for a in auditors if votes[a] == "honest"][0]
    assert by_addr[loser].credits_of(loser) == 0
    _assert_vault_invariant(chal)


def test_all_abstain_returns_the_bond(roles, signers, swarm):
    """Auditors who cannot fetch the evidence abstain: no quorum, the challenger loses nothing."""
    chal, accused = roles["challenger"], roles["op2"]
    r = make_receipt(chal, accused.address, swarm, step=1)
    sig = sign_receipt(r, chal.receipt_domain(), signers[1].key)
    credits_before = chal.credits_of(chal.address)
    stake_before = accused.stake_of(accused.address)
    dispute_id = chal.open_dispute(r, sig, "bafy-unfetchable-evidence", 7)
    advance(chal, blocks=3)
    auditors = chal.draw_auditors(dispute_id)
    by_addr = {roles[n].address: roles[n] for n in ["op1", "op3", "op4"]}
    assert sorted(auditors) == sorted(by_addr)
    stakes = {a: by_addr[a].stake_of(a) for a in auditors}
    salts = {a: os.urandom(32) for a in auditors}
    for a in auditors:
        by_addr[a].commit_vote(dispute_id, "abstain", b"\x00" * 32, salts[a])
    for a in auditors:
        by_addr[a].reveal_vote(dispute_id, "abstain", b"\x00" * 32, salts[a])
    assert chal.dispute(dispute_id)["abstain_votes"] == 3
    assert chal.resolve(dispute_id) == "no_quorum"  # early: every drawn auditor revealed
    assert chal.credits_of(chal.address) == credits_before + chal.dispute(dispute_id)["bond"]
    assert accused.stake_of(accused.address) == stake_before
    assert {a: by_addr[a].stake_of(a) for a in auditors} == stakes  # abstainers not penalised
    assert all(by_addr[a].credits_of(a) == 0 for a in auditors)  # nor paid
    chal.withdraw()
    _assert_vault_invariant(chal)


def test_receipt_after_leaving_is_rejected(roles, signers, swarm):
    op, chal = roles["op4"], roles["challenger"]
    op.leave()
    later = chal.w3.eth.get_block("latest")["timestamp"] + 5
    advance(chal, seconds=10)
    r = make_receipt(chal, op.address, swarm, issued_at=later)
    sig = sign_receipt(r, chal.receipt_domain(), signers[3].key)
    with pytest.raises(ChainError, match="not .* registered signer"):
        chal.open_dispute(r, sig, "bafy-evidence-cid-001", 0)
    with pytest.raises(ContractReverted) as err:  # the court itself refuses it too
        _open_raw(chal, r, sig, "bafy-evidence-cid-001", 0)
    assert err.value.name == "DisputeCourt_SignerNotRegistered"


def _open_raw(chain, receipt, sig, cid, block):
    """openDispute straight to the court, skipping Chain.open_dispute's off-chain term check."""
    return chain.open_dispute(receipt, sig, cid, block, precheck=False)


def _assert_vault_invariant(chain):
    v = chain.vault.functions
    total = (v.totalStaked().call() + v.totalUnbonding().call() + v.totalCredits().call()
             + v.escrow().call() + v.treasury().call())
    assert chain.w3.eth.get_balance(chain.vault.address) == total
