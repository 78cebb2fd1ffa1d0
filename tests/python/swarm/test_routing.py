"""Unit tests of the pure routing / backoff functions (no network)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client.routing import (BanList, Hop, NoAllowedRoute, ServerFilter, ServerRule, ServerState, backoff_delay,
                            find_route, missing_blocks, parse_rule, parse_rules, route_latency, route_price)


def S(addr, a, b, tp=100.0, rtt=0.001, load=0.0):
    return ServerState(addr, a, b, tp, rtt, load)


def test_single_full_server():
    assert find_route([S("a", 0, 8)], 0, 8) == [Hop("a", 0, 8)]


def test_prefers_fewer_hops_when_equal_speed():
    servers = [S("a", 0, 4), S("b", 4, 8), S("full", 0, 8)]
    assert find_route(servers, 0, 8) == [Hop("full", 0, 8)]


def test_fast_servers_beat_slow_full_server():
    servers = [S("a", 0, 4, tp=1000), S("b", 4, 8, tp=1000), S("slow", 0, 8, tp=10)]
    assert [h.address for h in find_route(servers, 0, 8)] == ["a", "b"]


def test_uses_subspans_of_overlapping_servers():
    servers = [S("a", 0, 6), S("b", 3, 8, tp=1e6)]
    route = find_route(servers, 0, 8)
    assert route[0].address == "a" and route[-1] == Hop("b", 3, 8)
    assert route[0].end == 3


def test_high_rtt_avoided():
    servers = [S("near", 0, 8, rtt=0.001), S("far", 0, 8, rtt=0.5)]
    assert find_route(servers, 0, 8)[0].address == "near"


def test_load_is_penalised():
    servers = [S("busy", 0, 8, load=1.0), S("idle", 0, 8)]
    assert find_route(servers, 0, 8)[0].address == "idle"


def test_missing_blocks_reported():
    servers = [S("a", 0, 2), S("b", 4, 6), S("c", 7, 8)]
    assert find_route(servers, 0, 8) is None
    assert missing_blocks(servers, 0, 8) == [(2, 4), (6, 7)]
    assert missing_blocks([], 0, 3) == [(0, 3)]


def test_partial_range_route():
    assert find_route([S("a", 0, 8)], 2, 5) == [Hop("a", 2, 5)]


def test_backoff_grows_and_caps():
    assert backoff_delay(0) == 0
    assert [backoff_delay(n, base=1, cap=10) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_banlist_excludes_until_expiry():
    bans = BanList(base=1.0)
    servers = [S("a", 0, 8), S("b", 0, 8)]
    bans.fail("a", now=100.0)
    assert [s.address for s in bans.usable(servers, now=100.5)] == ["b"]
    assert len(bans.usable(servers, now=101.5)) == 2
    bans.fail("a", now=102.0)  # second consecutive failure: 2 s
    assert bans.banned("a", now=103.5) and not bans.banned("a", now=104.5)
    bans.succeed("a")
    assert not bans.banned("a", now=102.1)


@st.composite
def swarms(draw):
    n = draw(st.integers(1, 12))
    servers = []
    for i in range(draw(st.integers(1, 8))):
        a = draw(st.integers(0, n - 1))
        b = draw(st.integers(a + 1, n))
        servers.append(S(f"s{i}", a, b, draw(st.floats(1, 1000)), draw(st.floats(0, 0.1))))
    return n, servers


@settings(max_examples=200, deadline=None)
@given(swarms())
def test_route_is_contiguous_valid_and_optimal_vs_greedy(data):
    n, servers = data
    route = find_route(servers, 0, n)
    if missing_blocks(servers, 0, n):
        assert route is None
        return
    assert route[0].start == 0 and route[-1].end == n
    by = {s.address: s for s in servers}
    for h, nxt in zip(route, route[1:]):
        assert h.end == nxt.start
    for h in route:
        assert by[h.address].start <= h.start < h.end <= by[h.address].end
    # never worse than the greedy "longest reach" cover
    greedy, pos = [], 0
    while pos < n:
        best = max((s for s in servers if s.start <= pos < s.end), key=lambda s: s.end)
        greedy.append(Hop(best.address, pos, best.end))
        pos = best.end
    assert route_latency(servers, route) <= route_latency(servers, greedy) + 1e-9


def test_price_is_weighed_against_latency_only_when_asked():
    fast_dear = ServerState("dear", 0, 10, throughput=100.0, price=1_000)  # wei per block per token
    slow_cheap = ServerState("cheap", 0, 10, throughput=50.0, price=0)
    # latency only: the fast server, whatever it costs
    assert find_route([fast_dear, slow_cheap], 0, 10) == [Hop("dear", 0, 10)]
    # 10 blocks x 1000 wei = 10,000 wei per token to save 0.01 s: worth it at > 1e6 wei/s
    assert find_route([fast_dear, slow_cheap], 0, 10, wei_per_second=1e5) == [Hop("cheap", 0, 10)]
    assert find_route([fast_dear, slow_cheap], 0, 10, wei_per_second=1e7) == [Hop("dear", 0, 10)]
    assert route_price([fast_dear, slow_cheap], [Hop("dear", 0, 4)]) == 4_000
    with pytest.raises(ValueError, match="wei_per_second"):
        find_route([fast_dear], 0, 10, wei_per_second=0)


# ---- privacy filter ----------------------------------------------------------------------------
OP = "0x00000000000000000000000000000000000000aA"


def test_rules_parse_addresses_operators_and_spans():
    assert parse_rule("10.0.0.1:5000") == ServerRule("10.0.0.1:5000")
    assert parse_rule(f"{OP}@2:6") == ServerRule(OP.lower(), 2, 6)
    assert parse_rule("a:1@3:") == ServerRule("a:1", 3, None)
    assert parse_rules("a:1, b:2@0:1") == (ServerRule("a:1"), ServerRule("b:2", 0, 1))
    assert parse_rules({"a:1": None, OP: (1, 4)}) == (ServerRule("a:1"), ServerRule(OP.lower(), 1, 4))
    for bad in ("a:1@x:2", "a:1@4:2", "a:1@3", "@0:2", "a:1@-1:2"):
        with pytest.raises(ValueError, match="server rule"):
            parse_rule(bad)


def test_blocked_server_is_never_routed_even_when_fastest():
    servers = [S("fast", 0, 8, tp=1e6), S("slow", 0, 8, tp=1)]
    assert find_route(servers, 0, 8) == [Hop("fast", 0, 8)]
    assert find_route(ServerFilter.of(blocked="fast").apply(servers), 0, 8) == [Hop("slow", 0, 8)]


def test_filter_names_servers_by_operator_or_signer():
    servers = [ServerState("a", 0, 8, 100, operator=OP), ServerState("b", 0, 8, 10, signer="0xBB")]
    assert [s.address for s in ServerFilter.of(allowed=[OP]).apply(servers)] == ["a"]
    assert [s.address for s in ServerFilter.of(blocked="0xbb").apply(servers)] == ["a"]
    assert ServerFilter.of(allowed=[]).apply(servers) == []  # an empty allowlist allows nobody


def test_per_span_rules_clip_servers_and_keep_block_time():
    servers = [S("a", 0, 8), S("b", 0, 8, tp=10)]
    allowed = ServerFilter.of(allowed=["a@0:3", "b"], blocked=["b@1:2"]).apply(servers)
    assert [(s.address, s.start, s.end) for s in allowed] == [("a", 0, 3), ("b", 0, 1), ("b", 2, 8)]
    assert allowed[0].block_time() == pytest.approx(servers[0].block_time())
    route = find_route(allowed, 0, 8)
    assert route[0].address == "a" and route[-1] == Hop("b", 3, 8)  # a is faster, but not past block 3


def test_uncovered_blocks_under_the_filter_are_named():
    f = ServerFilter.of(allowed=["a@0:2"], blocked=["b"])
    servers = f.apply([S("a", 0, 8), S("b", 0, 8)])
    assert find_route(servers, 0, 8) is None
    err = NoAllowedRoute(missing_blocks(servers, 0, 8), 8, f)
    assert str(err) == ("no allowed route: no server passing the filter covers blocks [2, 8) of 8 "
                        "[filter allowed: a@0:2; blocked: b]")
    assert not ServerFilter().active and ServerFilter().apply(servers) == servers


@settings(max_examples=200, deadline=None)
@given(swarms(), st.data())
def test_filtered_routes_only_use_allowed_blocks(data, draw):
    n, servers = data
    rules = [f"s{draw.draw(st.integers(0, 7))}@{a}:{a + draw.draw(st.integers(1, 4))}"
             for a in draw.draw(st.lists(st.integers(0, n - 1), max_size=6))]
    blocked = draw.draw(st.lists(st.sampled_from(rules), max_size=2)) if rules else []
    f = ServerFilter.of(allowed=rules, blocked=blocked)
    route = find_route(f.apply(servers), 0, n)
    by = {s.address: s for s in servers}
    for hop in route or []:
        for block in range(hop.start, hop.end):
            assert f.may_run(by[hop.address], block)
    if route is None:
        assert missing_blocks(f.apply(servers), 0, n)
