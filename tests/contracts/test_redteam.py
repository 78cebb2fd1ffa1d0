"""Red team: one test per attack on the court, each run as a rational attacker would, showing
the attack reverts or loses money, that honest parties lose nothing, and that the vault
invariant holds. Table in README ("Red-team suite")."""

import os

import ape
import pytest
from eth_utils import keccak

from conftest import (ETHER, EVIDENCE, PARAMS, commit_opening, draw, fingerprint, fresh_accounts, open_tx,
                      vault_invariant, verdict_code)

JUNK = "bafkreijunkjunkjunkjunkjunkjunkjunkjunkjunkjunkjunkjunkjunk"


@pytest.fixture
def by_addr(operators, challenger):
    return {a.address: a for a in [*operators, challenger]}


def sybils(owner, n, fund=60 * ETHER):
    """n fresh funded accounts (the attacker's other addresses)."""
    return fresh_accounts(owner, n, fund)


def register(vault, registry, version_id, account, stake=2 * ETHER, port=31400):
    vault.stake(value=stake, sender=account)
    registry.register(account.address, f"grpc://10.0.0.1:{port}", version_id, 0, 8, 50, sender=account)


def vote_all(court, dispute_id, verdicts, by):
    """Commit then reveal {address: True (faulty) | False (honest) | "abstain"} for the drawn auditors."""
    salts = {a: os.urandom(32) for a in verdicts}
    for a, v in verdicts.items():
        code = verdict_code(v)
        court.commitVote(dispute_id, court.commitmentOf(dispute_id, a, code, fingerprint(a, code), salts[a]), sender=by[a])
    for a, v in verdicts.items():
        code = verdict_code(v)
        court.revealVote(dispute_id, code, fingerprint(a, code), salts[a], sender=by[a])


def test_sybils_registered_after_opening_are_never_drawn(court, vault, registry, chain, version_id, swarm, owner,
                                                         signed_receipt, open_dispute, operators, signer_keys,
                                                         challenger):
    """Draw steering by registering after the seed: the candidate list is the ticket prefix at
    opening, so 3 sybils with 25x the honest stake each, registered after opening, never sit."""
    ids = []
    for _ in range(4):
        r, sig = signed_receipt(operators[0], signer_keys[0])
        ids.append(open_dispute(r, sig, challenger))
    attackers = sybils(owner, 3)
    for i, s in enumerate(attackers):
        register(vault, registry, version_id, s, stake=50 * ETHER, port=31500 + i)
    drawn = [a for d in ids for a in draw(court, chain, d)]
    assert drawn and not {s.address for s in attackers} & set(drawn)
    # control: opened after they registered, the same sybils fill the panels (weight 25x)
    r, sig = signed_receipt(operators[0], signer_keys[0])
    later = draw(court, chain, open_dispute(r, sig, challenger))
    assert {s.address for s in attackers} & set(later)
    vault_invariant(vault, chain)


def test_sybils_must_be_active_before_min_age(court, vault, registry, chain, version_id, swarm, owner,
                                              signed_receipt, open_dispute, operators, signer_keys, challenger):
    """Front-running an opening with fresh registrations: with auditorMinAge, servers active for
    less than it at opening are not candidates even though their tickets precede the opening."""
    court.setParams(PARAMS.__class__(**{**vars(PARAMS), "auditor_min_age": 3600}).court_tuple(), sender=owner)
    chain.pending_timestamp += 7200  # the honest swarm has been up for two hours
    attackers = sybils(owner, 3)
    for i, s in enumerate(attackers):
        register(vault, registry, version_id, s, stake=50 * ETHER, port=31600 + i)
    r, sig = signed_receipt(operators[0], signer_keys[0])
    drawn = draw(court, chain, open_dispute(r, sig, challenger))
    assert len(drawn) == 3 and not {s.address for s in attackers} & set(drawn)


def test_leaving_after_the_seed_only_removes_the_leaver(court, vault, registry, chain, version_id, swarm, owner,
                                                        signed_receipt, open_dispute, operators, signer_keys,
                                                        challenger):
    """Draw steering by leaving/updating once the seed is known: the attacker computes the panel
    off chain and has its drawn sybils leave; every honest auditor of the predicted panel stays."""
    attackers = sybils(owner, 4)
    for i, s in enumerate(attackers):
        register(vault, registry, version_id, s, stake=2 * ETHER, port=31700 + i)
    r, sig = signed_receipt(operators[0], signer_keys[0])
    d = open_dispute(r, sig, challenger)
    chain.mine(PARAMS.draw_delay_blocks + 1)
    rec = court.getDispute(d)
    seed = keccak(chain.provider.web3.eth.get_block(rec.drawBlock)["hash"] + d.to_bytes(32, "big") + bytes(32))
    predicted = list(registry.drawPanel(seed, rec.ticketCount, rec.openedAt, 3,
                                        [operators[0].address, challenger.address, "0x" + "00" * 20]))
    mine = {s.address: s for s in attackers}
    for a in predicted:
        if a in mine:
            registry.leave(sender=mine[a])
    honest = [s.address for s in operators[1:]]
    court.drawAuditors(d, sender=operators[1])
    actual = list(court.auditorsOf(d))
    assert set(a for a in predicted if a in honest) <= set(actual)
    assert not set(a for a in predicted if a in mine) & set(actual)


def test_copied_opening_reverts(court, chain, swarm, signed_receipt, operators, signer_keys, challenger, stranger):
    """Front-running / copying an opening: the commitment binds the challenger, so a copier
    replaying the reveal's calldata (salt included) from its address has no commitment."""
    r, sig = signed_receipt(operators[0], signer_keys[0])
    salt = commit_opening(court, r, challenger)
    with ape.reverts(court.DisputeCourt_NoOpeningCommitment):
        court.openDispute(r.as_tuple(), sig, EVIDENCE, 0, salt, value=ETHER, sender=stranger)
    court.openDispute(r.as_tuple(), sig, EVIDENCE, 0, salt, value=court.bondFor(r.server), sender=challenger)
    assert court.getDispute(1).challenger == challenger.address
    with ape.reverts(court.DisputeCourt_NoOpeningCommitment):  # and a commitment is used once
        court.openDispute(r.as_tuple(), sig, EVIDENCE, 0, salt, value=court.bondFor(r.server), sender=challenger)


def test_opening_must_be_revealed_in_time(court, chain, swarm, signed_receipt, operators, signer_keys, challenger):
    r, sig = signed_receipt(operators[0], signer_keys[0])
    salt = commit_opening(court, r, challenger)
    chain.mine(PARAMS.open_reveal_blocks + 1)
    with ape.reverts(court.DisputeCourt_OpeningExpired):
        court.openDispute(r.as_tuple(), sig, EVIDENCE, 0, salt, value=court.bondFor(r.server), sender=challenger)


def test_junk_dispute_cannot_burn_the_receipt(court, vault, chain, swarm, signed_receipt, operators, signer_keys,
                                              challenger, stranger, by_addr):
    """Burning a receipt: the accused's friend disputes it first with junk evidence and the panel
    rules honest; the honest challenger's dispute of the same receipt still opens and slashes.
    The friend's bond is lost (half to the accused, half to the auditors): the accused pays
    bond/2 net and is slashed anyway."""
    accused = operators[0]
    r, sig = signed_receipt(accused, signer_keys[0])
    open_tx(court, r, sig, stranger, cid=JUNK)
    junk = court.disputeCount()
    open_tx(court, r, sig, challenger)
    real = court.disputeCount()
    stake = vault.stakeOf(accused)
    vote_all(court, junk, {a: False for a in draw(court, chain, junk)}, by_addr)
    court.resolve(junk, sender=stranger)
    assert court.getDispute(junk).outcome == 2
    vote_all(court, real, {a: True for a in draw(court, chain, real)}, by_addr)
    court.resolve(real, sender=challenger)
    assert court.getDispute(real).outcome == 1 and vault.stakeOf(accused) == stake // 2
    assert vault.credits(stranger) == 0
    vault_invariant(vault, chain)


def test_one_incident_is_slashed_once(court, vault, chain, swarm, signed_receipt, operators, signer_keys,
                                      challenger, by_addr, domain):
    """Repeated slashes for one session: two receipts of one faulty session, both disputed and
    both ruled faulty, take one slash; a third opening for the session reverts."""
    from pollen.receipts import Receipt, sign_receipt

    accused = operators[0]
    r1, sig1 = signed_receipt(accused, signer_keys[0], step=0)
    r2 = Receipt(**{**r1.__dict__, "step": 1, "output_hash": os.urandom(32)})
    sig2 = sign_receipt(r2, domain, signer_keys[0].key)
    open_tx(court, r1, sig1, challenger)
    open_tx(court, r2, sig2, challenger)
    stake = vault.stakeOf(accused)
    for d in (1, 2):
        vote_all(court, d, {a: True for a in draw(court, chain, d)}, by_addr)
        court.resolve(d, sender=challenger)
    assert [court.getDispute(d).outcome for d in (1, 2)] == [1, 1]
    assert vault.stakeOf(accused) == stake // 2  # once, not twice
    assert court.incidentSlashedBy(keccak(bytes(12) + bytes.fromhex(accused.address[2:]) + r1.session_id)) == 1
    r3 = Receipt(**{**r1.__dict__, "step": 2})
    with ape.reverts(court.DisputeCourt_IncidentSlashed):
        open_tx(court, r3, sign_receipt(r3, domain, signer_keys[0].key), challenger)
    vault_invariant(vault, chain)


def test_copier_cannot_take_the_finders_reward(court, vault, chain, swarm, signed_receipt, operators, signer_keys,
                                               challenger, stranger, by_addr):
    """Copying a challenger's claim after seeing it: the copy opens later and cannot settle
    faulty while the original is pending; once the original took the slash, the copy only gets
    its bond back."""
    r, sig = signed_receipt(operators[0], signer_keys[0])
    open_tx(court, r, sig, challenger)
    open_tx(court, r, sig, stranger)  # the copier's own commitment, a block later
    copy_panel = draw(court, chain, 2)
    vote_all(court, 2, {a: True for a in copy_panel}, by_addr)
    with ape.reverts(court.DisputeCourt_OlderDisputePending):
        court.resolve(2, sender=stranger)
    vote_all(court, 1, {a: True for a in draw(court, chain, 1)}, by_addr)
    court.resolve(1, sender=challenger)
    court.resolve(2, sender=stranger)
    slashed = court.getDispute(1)
    assert vault.credits(challenger) > court.getDispute(1).bond
    assert vault.credits(stranger) == court.getDispute(2).bond and slashed.outcome == 1
    vault_invariant(vault, chain)


def test_one_auditor_panel_cannot_slash(project, court, vault, registry, chain, version_id, owner, operators,
                                        signer_keys, challenger, signed_receipt, open_dispute, staked_server):
    """No minimum panel: with only two eligible auditors the draw finds too few and rules
    NoQuorum: no slash, bond refunded, nobody left frozen."""
    for i in range(3):
        staked_server(operators[i], signer_keys[i], port=31330 + i)
    r, sig = signed_receipt(operators[0], signer_keys[0])
    d = open_dispute(r, sig, challenger)
    stake = vault.stakeOf(operators[0])
    chain.mine(PARAMS.draw_delay_blocks + 1)
    court.drawAuditors(d, sender=challenger)
    assert court.getDispute(d).outcome == 3 and court.getDispute(d).stage == 4
    assert vault.stakeOf(operators[0]) == stake and vault.credits(challenger) == court.getDispute(d).bond
    assert not vault.isFrozen(operators[0])
    vault_invariant(vault, chain)


def test_draw_gas_does_not_grow_with_servers(court, vault, registry, chain, version_id, swarm, owner,
                                             signed_receipt, open_dispute, operators, signer_keys, challenger):
    """Draw gas-DoS with many servers: the draw reads O(K log n) tickets, not every server."""
    r, sig = signed_receipt(operators[0], signer_keys[0])
    d1 = open_dispute(r, sig, challenger)
    chain.mine(PARAMS.draw_delay_blocks + 1)
    small = court.drawAuditors(d1, sender=challenger).gas_used
    for i, s in enumerate(sybils(owner, 40, fund=3 * ETHER)):
        register(vault, registry, version_id, s, port=32000 + i)
    r, sig = signed_receipt(operators[0], signer_keys[0])
    d2 = open_dispute(r, sig, challenger)
    chain.mine(PARAMS.draw_delay_blocks + 1)
    large = court.drawAuditors(d2, sender=challenger).gas_used
    assert registry.ticketCount() == 45
    assert large < small * 1.2, (small, large)


def test_lapsed_draw_forfeits_the_bond_no_reroll(court, vault, chain, swarm, signed_receipt, open_dispute,
                                                 operators, signer_keys, challenger):
    """Unlimited re-rolls: a challenger who dislikes the panel it can compute cannot let the
    draw expire for a fresh roll: a lapse ends the dispute and the bond goes to the treasury."""
    r, sig = signed_receipt(operators[0], signer_keys[0])
    d = open_dispute(r, sig, challenger)
    treasury = vault.treasury()
    chain.mine(300)
    court.drawAuditors(d, sender=challenger)
    rec = court.getDispute(d)
    assert rec.outcome == 4 and rec.stage == 4 and not vault.isFrozen(operators[0])
    assert vault.treasury() == treasury + rec.bond and vault.credits(challenger) == 0
    vault_invariant(vault, chain)


def test_bond_scales_with_the_accused_stake(court, vault, chain, swarm, signed_receipt, operators, signer_keys,
                                            challenger, by_addr):
    """A frivolous dispute against a large staker: the bond is bondBps of the possible slash,
    so with finderBps 20 % and bondBps 10 % it pays only if it wins > 1/3 of the time."""
    big = operators[0]
    vault.stake(value=98 * ETHER, sender=big)  # 100 ETH slashable
    required = court.bondFor(big)
    assert required == 100 * ETHER * PARAMS.slash_bps // 10_000 * PARAMS.bond_bps // 10_000  # 5 ETH
    r, sig = signed_receipt(big, signer_keys[0])
    with ape.reverts(court.DisputeCourt_BondTooLow):
        open_tx(court, r, sig, challenger, value=PARAMS.min_bond)
    open_tx(court, r, sig, challenger, value=required)
    vote_all(court, 1, {a: False for a in draw(court, chain, 1)}, by_addr)
    court.resolve(1, sender=challenger)
    assert vault.credits(challenger) == 0 and vault.credits(big) == required * PARAMS.accused_share_bps // 10_000
    vault_invariant(vault, chain)


def test_params_changed_mid_dispute_do_not_apply(court, vault, chain, owner, swarm, signed_receipt, open_dispute,
                                                 operators, signer_keys, challenger, by_addr):
    """The owner lowering slashBps mid-dispute (to protect a friend) changes nothing for it."""
    r, sig = signed_receipt(operators[0], signer_keys[0])
    d = open_dispute(r, sig, challenger)
    stake = vault.stakeOf(operators[0])
    court.setParams(PARAMS.__class__(**{**vars(PARAMS), "slash_bps": 100}).court_tuple(), sender=owner)
    vote_all(court, d, {a: True for a in draw(court, chain, d)}, by_addr)
    court.resolve(d, sender=challenger)
    assert vault.stakeOf(operators[0]) == stake - stake * PARAMS.slash_bps // 10_000
    assert court.paramsOf(d).slashBps == PARAMS.slash_bps and court.params().slashBps == 100


def test_drawn_auditor_cannot_unstake_before_settlement(court, vault, chain, faulty_setup, by_addr):
    """An auditor planning to vote wrongly and leave before the penalty: frozen from the draw."""
    d, panel = faulty_setup
    with ape.reverts(vault.StakeVault_Frozen):
        vault.requestUnstake(ETHER, sender=by_addr[panel[0]])
    vote_all(court, d, {a: True for a in panel}, by_addr)
    court.resolve(d, sender=by_addr[panel[0]])
    vault.requestUnstake(ETHER // 2, sender=by_addr[panel[0]])


@pytest.fixture
def faulty_setup(court, chain, swarm, signed_receipt, open_dispute, operators, signer_keys, challenger):
    r, sig = signed_receipt(operators[0], signer_keys[0])
    d = open_dispute(r, sig, challenger)
    return d, draw(court, chain, d)


def test_incoherent_auditor_loses_its_deposit(court, vault, chain, faulty_setup, by_addr, challenger):
    """A lazy or bribed auditor voting against the majority loses incoherencePenalty; the
    coherent ones are paid."""
    d, panel = faulty_setup
    stakes = {a: vault.stakeOf(a) for a in panel}
    vote_all(court, d, {panel[0]: True, panel[1]: True, panel[2]: False}, by_addr)
    court.resolve(d, sender=challenger)
    assert vault.stakeOf(panel[2]) == stakes[panel[2]] - PARAMS.incoherence_penalty
    assert vault.credits(panel[2]) == 0 and vault.credits(panel[0]) > 0
    assert vault.stakeOf(panel[0]) == stakes[panel[0]]


def test_ownership_is_two_step_and_cannot_be_renounced(court, vault, owner, stranger):
    for c in (court, vault):
        with ape.reverts():
            c.renounceOwnership(sender=owner)
        c.transferOwnership(stranger, sender=owner)
        assert c.owner() == owner.address and c.pendingOwner() == stranger.address
        c.acceptOwnership(sender=stranger)
        assert c.owner() == stranger.address


@pytest.mark.parametrize("field,value", [("slash_bps", 10_000), ("finder_bps", 9_000), ("min_bond", 1),
                                         ("no_reveal_penalty", 10 * ETHER), ("incoherence_penalty", ETHER),
                                         ("min_panel", 1), ("auditors_per_dispute", 1)])
def test_governance_values_are_bounded(court, owner, field, value):
    with ape.reverts(court.DisputeCourt_BadParams):
        court.setParams(PARAMS.__class__(**{**vars(PARAMS), field: value}).court_tuple(), sender=owner)


def test_appeal_overturns_a_colluding_first_panel(court, vault, registry, chain, version_id, owner, swarm,
                                                 signed_receipt, open_dispute, operators, signer_keys, challenger,
                                                 by_addr):
    """A first panel that covers for a cheater (bribed, or the cheater's own sybils): the
    challenger appeals for twice the bond; a fresh panel of 2K+1 rules faulty; the colluders
    each lose incoherencePenalty and earn nothing, the appeal bond comes back."""
    court.setParams(PARAMS.__class__(**{**vars(PARAMS), "appeal_period": 3600}).court_tuple(), sender=owner)
    extra = sybils(owner, 6, fund=5 * ETHER)  # more honest servers, so 7 fresh auditors exist
    for i, s in enumerate(extra):
        register(vault, registry, version_id, s, port=32100 + i)
    by = {**by_addr, **{s.address: s for s in extra}}
    r, sig = signed_receipt(operators[0], signer_keys[0])
    d = open_dispute(r, sig, challenger)
    first = draw(court, chain, d)
    stakes = {a: vault.stakeOf(a) for a in first}
    vote_all(court, d, {a: False for a in first}, by)  # "honest": the cover-up
    court.resolve(d, sender=challenger)
    rec = court.getDispute(d)
    assert rec.stage == 3 and rec.firstRuling == 2  # appealable, first ruling honest
    with ape.reverts(court.DisputeCourt_BondTooLow):
        court.appeal(d, value=rec.bond, sender=challenger)
    court.appeal(d, value=2 * rec.bond, sender=challenger)
    second = [a for a in draw(court, chain, d) if a not in first]
    assert len(second) == 2 * PARAMS.auditors_per_dispute + 1 and not set(second) & set(first)
    stake = vault.stakeOf(operators[0])
    vote_all(court, d, {a: True for a in second}, by)
    court.resolve(d, sender=challenger)
    rec = court.getDispute(d)
    assert rec.outcome == 1 and vault.stakeOf(operators[0]) == stake // 2
    for a in first:
        assert vault.stakeOf(a) == stakes[a] - PARAMS.incoherence_penalty and vault.credits(a) == 0
    assert all(vault.credits(a) > 0 for a in second)
    slashed = stake // 2
    assert vault.credits(challenger) == rec.bond + 2 * rec.bond + slashed * PARAMS.finder_bps // 10_000
    assert not any(vault.isFrozen(a) for a in [*first, *second, operators[0].address])
    vault_invariant(vault, chain)


def test_abstaining_to_block_a_ruling_is_not_free(court, vault, chain, faulty_setup, by_addr, challenger):
    """The accused's friend on the panel abstains (a "no" that used to cost nothing, unlike an
    honest vote against the ruling). The panel still rules faulty, so the evidence was usable:
    the abstainer loses half the incoherence penalty; the accused is slashed."""
    d, panel = faulty_setup
    stakes = {a: vault.stakeOf(a) for a in panel}
    accused = court.getDispute(d).accused
    slashable = vault.slashableOf(accused)
    vote_all(court, d, {panel[0]: True, panel[1]: True, panel[2]: "abstain"}, by_addr)
    tx = court.resolve(d, sender=challenger)
    assert court.getDispute(d).outcome == 1  # Faulty
    assert vault.stakeOf(panel[2]) == stakes[panel[2]] - PARAMS.incoherence_penalty // 2
    assert [(e.auditor, e.incoherent) for e in tx.events if e.event_name == "AuditorPenalized"] == [(panel[2], True)]
    assert vault.slashableOf(accused) == slashable - slashable * PARAMS.slash_bps // 10_000
    assert vault.stakeOf(panel[0]) == stakes[panel[0]] and vault.credits(panel[0]) > 0
    vault_invariant(vault, chain)


def test_honest_abstainers_lose_nothing_when_nobody_could_judge(court, vault, chain, faulty_setup, by_addr,
                                                               challenger):
    """Unusable evidence: every auditor abstains, nobody rules, nobody is penalised and the
    challenger's bond comes back."""
    d, panel = faulty_setup
    stakes = {a: vault.stakeOf(a) for a in panel}
    vote_all(court, d, {a: "abstain" for a in panel}, by_addr)
    tx = court.resolve(d, sender=challenger)
    assert court.getDispute(d).outcome == 3  # NoQuorum
    assert not [e for e in tx.events if e.event_name == "AuditorPenalized"]
    assert {a: vault.stakeOf(a) for a in panel} == stakes
    assert vault.credits(challenger) == court.getDispute(d).bond
    vault_invariant(vault, chain)
