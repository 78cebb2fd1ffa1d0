"""The whole lifecycle in one story. `make test` runs this module twice: on Ape's in-process
chain and on a real anvil (`--network ethereum:local:foundry`, started on a free port)."""

from conftest import ETHER, PARAMS, draw, vault_invariant


def test_stake_register_dispute_audit_slash_withdraw(
    chain, vault, registry, court, version_id, staked_server, operators, signer_keys, challenger,
    signed_receipt, open_dispute, vote,
):
    # stake + register four servers; op0 serves blocks [0, 4) with a hot signer key
    for i, op in enumerate(operators[:4]):
        staked_server(op, signer_keys[i], first=0, last=4 if i == 0 else 8, port=31330 + i)
    assert registry.activeCount(version_id) == 4

    # op0 signs a receipt (in Python, EIP-712); the client finds its output wrong and disputes
    receipt, sig = signed_receipt(operators[0], signer_keys[0], first=0, last=4, step=7)
    assert court.recoverSigner(receipt.as_tuple(), sig) == signer_keys[0].address
    # the opening is committed, then revealed a block later with the bond scaled to the stake
    bond = court.bondFor(operators[0])
    assert bond == max(PARAMS.min_bond, 2 * ETHER * PARAMS.slash_bps // 10_000 * PARAMS.bond_bps // 10_000)
    dispute_id = open_dispute(receipt, sig, challenger)
    assert vault.isFrozen(operators[0]) and court.getDispute(dispute_id).bond == bond

    # auditors drawn from the other three; frozen until the ruling; all find it faulty
    auditors = draw(court, chain, dispute_id)
    assert set(auditors) == {op.address for op in operators[1:4]}
    assert all(vault.isFrozen(a) for a in auditors)
    by_addr = {op.address: op for op in operators}
    vote(court, dispute_id, {a: True for a in auditors}, by_addr)

    slashable = vault.slashableOf(operators[0])
    court.resolve(dispute_id, sender=challenger)
    slashed = slashable * PARAMS.slash_bps // 10_000
    assert vault.slashableOf(operators[0]) == slashable - slashed
    assert court.getDispute(dispute_id).outcome == 1  # Faulty
    assert not any(vault.isFrozen(a) for a in [operators[0].address, *auditors])
    vault_invariant(vault, chain)

    # everyone withdraws their credits (pull payments)
    expected = {challenger.address: bond + slashed * PARAMS.finder_bps // 10_000}
    for a in auditors:
        expected[a] = slashed * PARAMS.auditor_bps // 10_000 // 3
    for addr, amount in expected.items():
        account = challenger if addr == challenger.address else by_addr[addr]
        assert vault.credits(addr) == amount
        before = account.balance
        tx = vault.withdraw(sender=account)
        assert account.balance == before + amount - tx.total_fees_paid

    # the slashed operator leaves and takes the rest of its stake after unbonding
    registry.leave(sender=operators[0])
    rest = vault.stakeOf(operators[0])
    vault.requestUnstake(rest, sender=operators[0])
    chain.pending_timestamp += PARAMS.unbonding_period + 1
    chain.mine()
    before = operators[0].balance
    tx = vault.withdraw(sender=operators[0])
    assert operators[0].balance == before + rest - tx.total_fees_paid
    vault_invariant(vault, chain)
    assert vault.treasury() == slashed - (expected[challenger.address] - bond) - 3 * expected[auditors[0]]
