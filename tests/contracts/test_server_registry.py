import ape
from eth_utils import keccak

from conftest import CID, ETHER


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


# ------------------------------------------------------------------ auditor tickets and sortition


def test_first_registration_issues_one_ticket_weighted_by_stake(registry, vault, operators, signer_keys, version_id,
                                                                court):  # court: wires the vault's stake hook
    a, b = operators[0], operators[1]
    vault.stake(value=3 * ETHER, sender=a)
    tx = registry.register(signer_keys[0].address, "grpc://a:1", version_id, 0, 8, 10, sender=a)
    ev = [e for e in tx.events if e.event_name == "TicketIssued"][0]
    assert (ev.operator, ev.index, ev.weight, ev.cumWeight) == (a.address, 0, 3 * ETHER, 3 * ETHER)
    vault.stake(value=ETHER, sender=b)
    tx = registry.register(signer_keys[1].address, "grpc://b:1", version_id, 0, 8, 10, sender=b)
    ev = [e for e in tx.events if e.event_name == "TicketIssued"][0]
    assert (ev.index, ev.weight, ev.cumWeight) == (1, ETHER, 4 * ETHER)
    assert registry.ticketCount() == 2 and registry.getServer(b).ticket == 2
    assert tuple(registry.ticketAt(1)) == (b.address, ETHER, ETHER, registry.getServer(b).activeSince)
    # leaving clears eligibility; staking more and rejoining reuses the ticket at its old weight
    registry.leave(sender=a)
    assert tuple(registry.ticketAt(0)) == (a.address, 3 * ETHER, 3 * ETHER, 0)
    vault.stake(value=10 * ETHER, sender=a)
    tx = registry.register(signer_keys[0].address, "grpc://a:1", version_id, 0, 8, 10, sender=a)
    assert not [e for e in tx.events if e.event_name == "TicketIssued"] and registry.ticketCount() == 2
    assert tuple(registry.ticketAt(0))[:3] == (a.address, 3 * ETHER, 3 * ETHER)
    assert registry.ticketAt(0)[3] == registry.getServer(a).activeSince > 0
    # unstaking lowers the effective weight, and staking again does not raise it
    vault.requestUnstake(12 * ETHER, sender=a)  # 1 ETH active: still registered
    assert registry.isActive(a) and registry.ticketAt(0)[2] == ETHER
    vault.stake(value=5 * ETHER, sender=a)
    assert registry.ticketAt(0)[2] == ETHER


def test_draw_panel_is_distinct_eligible_and_over_the_prefix(registry, staked_server, operators, signer_keys, chain):
    for i, op in enumerate(operators):
        staked_server(op, signer_keys[i], port=31330 + i)
    addrs = [op.address for op in operators]
    now = chain.blocks.head.timestamp
    with ape.reverts(registry.ServerRegistry_BadDraw, count=0, tickets=5):
        registry.drawPanel(b"\x01" * 32, 0, now, 3, [])
    with ape.reverts(registry.ServerRegistry_BadDraw, count=6, tickets=5):
        registry.drawPanel(b"\x01" * 32, 6, now, 3, [])
    registry.leave(sender=operators[4])
    seen = set()
    for n in range(12):
        seed = keccak(n.to_bytes(32, "big"))
        panel = list(registry.drawPanel(seed, 5, now, 3, [addrs[0]]))
        assert len(panel) == 3 == len(set(panel)) and set(panel) <= set(addrs[1:4]), panel
        seen |= set(panel)
        # only the first `count` tickets; fewer than k when fewer are eligible
        assert sorted(registry.drawPanel(seed, 2, now, 3, [])) == sorted(addrs[:2])
        assert sorted(registry.drawPanel(seed, 5, now, 9, [])) == sorted(addrs[:4])
        # nobody whose Active period began after activeBefore
        assert list(registry.drawPanel(seed, 5, now - 3600, 3, [])) == []
    assert seen == set(addrs[1:4])


def test_draw_panel_is_weighted_by_stake_and_never_regains_weight(registry, vault, staked_server, operators,
                                                                   signer_keys, chain, court):
    staked_server(operators[0], signer_keys[0], amount=18 * ETHER)
    for i, op in enumerate(operators[1:5], start=1):
        staked_server(op, signer_keys[i], port=31330 + i)  # 2 ETH each: 8 of 26
    now = chain.blocks.head.timestamp
    seeds = [keccak(b"w" + n.to_bytes(32, "big")) for n in range(60)]

    def share():
        return sum(registry.drawPanel(s, 5, now, 1, [])[0] == operators[0].address for s in seeds)

    heavy = share()
    assert heavy > 30, heavy  # about 18/26 of 60
    vault.requestUnstake(17 * ETHER, sender=operators[0])  # 1 ETH active: effective weight 1/18
    vault.stake(value=17 * ETHER, sender=operators[0])  # staking back does not restore it
    light = share()
    assert light < 15, light
