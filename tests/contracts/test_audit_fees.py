"""AuditFeePayer: auditors are paid from the escrow's audit pool for every resolved dispute,
whatever the verdict; wrong, abstaining and silent auditors get nothing; once per dispute."""

import ape
import pytest

from conftest import ABSTAIN, ETHER, FAULTY, PARAMS, draw, escrow_invariant, fingerprint

FEE = 10**16  # 0.01 ETH per coherent auditor


def travel(chain, seconds):
    chain.pending_timestamp += seconds
    chain.mine(1)


@pytest.fixture
def fees(project, owner, court, escrow):
    payer = project.AuditFeePayer.deploy(court, escrow, FEE, owner, sender=owner)
    escrow.setAuditPayer(payer, sender=owner)
    escrow.fundAuditPool(value=ETHER, sender=owner)
    return payer


@pytest.fixture
def by_addr(operators, challenger):
    return {a.address: a for a in [*operators, challenger]}


@pytest.fixture
def dispute(swarm, signed_receipt, open_dispute, operators, signer_keys, challenger):
    r, sig = signed_receipt(operators[0], signer_keys[0])
    return open_dispute(r, sig, challenger)


def test_coherent_auditors_are_paid_when_the_accused_is_honest(court, chain, escrow, fees, dispute, challenger,
                                                               stranger, by_addr, vote):
    """Honest auditing pays even when nobody cheated: a 2-1 Honest ruling pays the two."""
    auditors = draw(court, chain, dispute)
    vote(court, dispute, {auditors[0]: False, auditors[1]: False, auditors[2]: True}, by_addr)
    with ape.reverts(fees.AuditFeePayer_NotResolved):
        fees.payAudit(dispute, sender=stranger)
    court.resolve(dispute, sender=challenger)
    tx = fees.payAudit(dispute, sender=stranger)  # anyone triggers it
    assert [(e.auditors, e.paidEach) for e in tx.events if e.event_name == "AuditPaid"] == [(2, FEE)]
    assert escrow.earned(auditors[0]) == escrow.earned(auditors[1]) == FEE
    assert escrow.earned(auditors[2]) == 0  # the wrong one gets nothing
    with ape.reverts(fees.AuditFeePayer_AlreadyPaid):
        fees.payAudit(dispute, sender=stranger)  # paying twice would drain the pool
    escrow.withdraw(sender=by_addr[auditors[0]])
    escrow_invariant(escrow, chain)


@pytest.mark.parametrize("third, outcome, paid", [
    ("abstain", 1, [FEE, FEE, 0]),  # Faulty 2-0: the abstainer gets nothing
    (None, 1, [FEE, FEE, 0]),  # Faulty 2-0: the silent one gets nothing
])
def test_abstainers_and_silent_auditors_get_nothing(court, chain, escrow, fees, dispute, challenger, by_addr, vote,
                                                    third, outcome, paid):
    auditors = draw(court, chain, dispute)
    v = {auditors[0]: True, auditors[1]: True, auditors[2]: third}
    salts = vote(court, dispute, v, by_addr, reveal=False)
    travel(chain, PARAMS.commit_period + 1)
    for a, salt in salts.items():
        code = FAULTY if v[a] is True else ABSTAIN
        court.revealVote(dispute, code, fingerprint(a, code), salt, sender=by_addr[a])
    travel(chain, PARAMS.reveal_period + 1)
    court.resolve(dispute, sender=challenger)
    assert court.getDispute(dispute).outcome == outcome
    fees.payAudit(dispute, sender=challenger)
    assert [escrow.earned(a) for a in auditors] == paid


def test_no_ruling_pays_nobody(court, chain, escrow, fees, dispute, challenger, by_addr, vote):
    auditors = draw(court, chain, dispute)
    salts = vote(court, dispute, {auditors[0]: True, auditors[1]: None, auditors[2]: None}, by_addr, reveal=False)
    travel(chain, PARAMS.commit_period + 1)
    court.revealVote(dispute, FAULTY, fingerprint(auditors[0], FAULTY), salts[auditors[0]], sender=by_addr[auditors[0]])
    travel(chain, PARAMS.reveal_period + 1)
    court.resolve(dispute, sender=challenger)
    assert court.getDispute(dispute).outcome == 3  # NoQuorum
    tx = fees.payAudit(dispute, sender=challenger)
    assert [(e.auditors, e.paidEach) for e in tx.events if e.event_name == "AuditPaid"] == [(0, 0)]
    assert escrow.earned(auditors[0]) == 0


def test_a_short_pool_pays_equal_shares_and_never_blocks(project, owner, court, chain, escrow, dispute, challenger,
                                                         by_addr, vote):
    payer = project.AuditFeePayer.deploy(court, escrow, FEE, owner, sender=owner)
    escrow.setAuditPayer(payer, sender=owner)
    escrow.fundAuditPool(value=FEE, sender=owner)  # one fee for three coherent auditors
    auditors = draw(court, chain, dispute)
    vote(court, dispute, {a: False for a in auditors}, by_addr)
    court.resolve(dispute, sender=challenger)
    payer.payAudit(dispute, sender=challenger)
    assert [escrow.earned(a) for a in auditors] == [FEE // 3] * 3
    escrow_invariant(escrow, chain)


def test_governance_bounds(project, owner, court, escrow, fees, stranger):
    with ape.reverts(fees.AuditFeePayer_FeeTooHigh):
        fees.setFeePerAudit(2 * ETHER, sender=owner)
    with ape.reverts():
        fees.setFeePerAudit(1, sender=stranger)
    with ape.reverts(fees.AuditFeePayer_RenounceDisabled):
        fees.renounceOwnership(sender=owner)
    with pytest.raises(Exception, match="max=1000000000000000000, value=2000000000000000000"):  # FeeTooHigh
        project.AuditFeePayer.deploy(court, escrow, 2 * ETHER, owner, sender=owner)
