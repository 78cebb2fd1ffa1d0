import ape
import pytest

from conftest import CID, ETHER, PARAMS


def test_register_lists_and_pages(registry, vault, operators, signer_keys, version_id, court):
    for i, op in enumerate(operators):
        vault.stake(value=ETHER, sender=op)
        tx = registry.register(signer_keys[i].address, f"grpc://h{i}:1", version_id, 0, 4 + i % 4, 10, sender=op)
        assert tx.events[-1].event_name == "ServerRegistered"
    assert registry.activeCount(version_id) == 5
    page1 = registry.activeServers(version_id, 0, 3)
    page2 = registry.activeServers(version_id, 3, 3)
    assert len(page1) == 3 and len(page2) == 2
    assert set(page1 + page2) == {op.address for op in operators}
    assert registry.activeServers(version_id, 10, 3) == []


def test_register_reverts(registry, vault, versions, operator, owner, signer_keys, version_id, court):
    s = signer_keys[0].address
    with ape.reverts(registry.ServerRegistry_InsufficientStake):
        registry.register(s, "grpc://x:1", version_id, 0, 8, 10, sender=operator)
    vault.stake(value=ETHER, sender=operator)
    with ape.reverts(registry.ServerRegistry_BadSpan):
        registry.register(s, "grpc://x:1", version_id, 0, 9, 10, sender=operator)
    with ape.reverts(registry.ServerRegistry_BadSpan):
        registry.register(s, "grpc://x:1", version_id, 4, 4, 10, sender=operator)
    with ape.reverts(registry.ServerRegistry_InactiveVersion):
        registry.register(s, "grpc://x:1", 99, 0, 8, 10, sender=operator)
    with ape.reverts(registry.ServerRegistry_ZeroSigner):
        registry.register("0x" + "00" * 20, "grpc://x:1", version_id, 0, 8, 10, sender=operator)
    with ape.reverts(registry.ServerRegistry_BadEndpoint):
        registry.register(s, "", version_id, 0, 8, 10, sender=operator)
    with ape.reverts(registry.ServerRegistry_ZeroThroughput):
        registry.register(s, "grpc://x:1", version_id, 0, 8, 0, sender=operator)
    # a deprecated version (a second one: tests must not rely on isolation to undo state)
    versions.publishVersion(1, CID + "-old", 8, 0, 10_000, sender=owner)
    old = versions.versionCount()
    versions.deprecateVersion(old, 0, sender=owner)
    with ape.reverts(registry.ServerRegistry_InactiveVersion):
        registry.register(s, "grpc://x:1", old, 0, 8, 10, sender=operator)


def test_update_moves_span_and_opens_term(registry, staked_server, operator, signer_keys, version_id, chain):
    staked_server(operator, signer_keys[0])
    t0 = chain.blocks.head.timestamp
    with ape.reverts(registry.ServerRegistry_AlreadyActive):
        registry.register(signer_keys[0].address, "grpc://x:1", version_id, 0, 8, 10, sender=operator)
    chain.pending_timestamp += 100
    registry.update(signer_keys[1].address, "grpc://new:2", version_id, 2, 6, 99, sender=operator)
    assert registry.getServer(operator).termCount == 2
    assert registry.getServer(operator).endpoint == "grpc://new:2"
    old = registry.getTerm(operator, 0)
    assert old.endedAt > 0 and old.signer == signer_keys[0].address
    # the old key is still accountable for receipts dated inside its term, not after it
    assert registry.signedFor(operator, signer_keys[0].address, version_id, 0, 8, t0, 0)
    assert not registry.signedFor(operator, signer_keys[0].address, version_id, 0, 8, old.endedAt + 50, 0)
    assert registry.signedFor(operator, signer_keys[1].address, version_id, 3, 5, old.endedAt + 50, 1)
    assert not registry.signedFor(operator, signer_keys[1].address, version_id, 0, 8, old.endedAt + 50, 1)  # outside span
    assert registry.findTerm(operator, signer_keys[0].address, version_id, 0, 8, t0) == 0


def test_leave_and_rejoin(registry, staked_server, operator, signer_keys, version_id):
    staked_server(operator, signer_keys[0])
    tx = registry.leave(sender=operator)
    assert tx.events[-1].event_name == "ServerLeft"
    assert not registry.isActive(operator)
    assert registry.activeCount(version_id) == 0
    with ape.reverts(registry.ServerRegistry_NotRegistered):
        registry.leave(sender=operator)
    with ape.reverts(registry.ServerRegistry_NotActive):
        registry.update(signer_keys[0].address, "grpc://x:1", version_id, 0, 8, 10, sender=operator)
    registry.register(signer_keys[0].address, "grpc://x:1", version_id, 0, 8, 10, sender=operator)
    assert registry.isActive(operator) and registry.getServer(operator).termCount == 2


def test_unstaking_below_minimum_deactivates(registry, vault, staked_server, operator, signer_keys, version_id):
    staked_server(operator, signer_keys[0], amount=ETHER)
    tx = vault.requestUnstake(1, sender=operator)
    assert any(e.event_name == "ServerDeactivated" for e in tx.events)
    assert registry.getServer(operator).status == 2  # Inactive
    assert registry.activeCount(version_id) == 0


def test_poke_after_min_stake_raised(registry, vault, owner, stranger, staked_server, operator, signer_keys):
    staked_server(operator, signer_keys[0], amount=ETHER)
    with ape.reverts(registry.ServerRegistry_StakeSufficient):
        registry.poke(operator, sender=stranger)
    vault.setMinStake(2 * ETHER, sender=owner)
    registry.poke(operator, sender=stranger)
    assert not registry.isActive(operator)
    with ape.reverts(registry.ServerRegistry_NotActive):
        registry.poke(operator, sender=stranger)


def test_only_vault_calls_hook(registry, stranger, operator):
    with ape.reverts(registry.ServerRegistry_NotVault):
        registry.onStakeDecreased(operator, sender=stranger)


def test_swap_pop_keeps_indices(registry, staked_server, operators, signer_keys, version_id):
    for i, op in enumerate(operators[:3]):
        staked_server(op, signer_keys[i], port=1000 + i)
    registry.leave(sender=operators[0])
    remaining = {registry.activeServerAt(version_id, i) for i in range(registry.activeCount(version_id))}
    assert remaining == {operators[1].address, operators[2].address}
    registry.leave(sender=operators[2])
    assert registry.activeServerAt(version_id, 0) == operators[1].address


def test_receipt_dated_slightly_before_registration_is_accountable(registry, staked_server, operator, signer_keys, version_id, chain):
    staked_server(operator, signer_keys[0])
    start = registry.getTerm(operator, 0).startedAt
    grace = registry.START_GRACE()
    assert registry.signedFor(operator, signer_keys[0].address, version_id, 0, 8, start - grace, 0)
    assert not registry.signedFor(operator, signer_keys[0].address, version_id, 0, 8, start - grace - 1, 0)
