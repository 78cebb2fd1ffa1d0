"""Routing: pick a chain of servers covering blocks [start, end) at minimum estimated cost.

Cost is latency, plus price when the client says what a second is worth to it: a hop costs
rtt + blocks x block_time + blocks x price / wei_per_second (price: wei per block per token,
what the server declares in the escrow; wei_per_second: what the client would pay to save one
second per token). Without wei_per_second, price is ignored (minimum latency).

Pure functions over plain data (no network): the client feeds them what `Info` calls and
measured round trips told it. Overlapping spans are fine: a hop may use any sub-span of a
server's span. Failing servers are excluded for a backoff period (`BanList`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ServerState:
    address: str  # "host:port"
    start: int  # served span [start, end)
    end: int
    throughput: float  # decode tokens/s through the whole span (server's own estimate)
    rtt: float = 0.001  # measured round trip, seconds
    load: float = 0.0  # active sessions / max sessions, 0..1
    price: int = 0  # wei per block per token (the server's declared price; 0 = free)

    def block_time(self) -> float:
        """Estimated seconds per block per decode step, inflated by load."""
        return (1.0 + self.load) / (max(self.throughput, 1e-9) * (self.end - self.start))


@dataclass(frozen=True)
class Hop:
    address: str
    start: int
    end: int


def missing_blocks(servers: list[ServerState], start: int, end: int) -> list[tuple[int, int]]:
    """Maximal intervals inside [start, end) that no server covers."""
    covered = [False] * (end - start)
    for s in servers:
        for b in range(max(s.start, start), min(s.end, end)):
            covered[b - start] = True
    gaps, gap_start = [], None
    for i, ok in enumerate(covered + [True]):
        if not ok and gap_start is None:
            gap_start = i + start
        elif ok and gap_start is not None:
            gaps.append((gap_start, i + start))
            gap_start = None
    return gaps


def hop_cost(s: ServerState, blocks: int, wei_per_second: float | None = None) -> float:
    """Seconds-equivalent cost of running `blocks` blocks on `s` for one token."""
    latency = s.rtt + blocks * s.block_time()
    return latency + (blocks * s.price / wei_per_second if wei_per_second else 0.0)


def find_route(servers: list[ServerState], start: int, end: int,
               wei_per_second: float | None = None) -> list[Hop] | None:
    """Min-cost chain of hops covering [start, end); None if some block is uncovered.

    Cost of a hop: `hop_cost`; dynamic programming over block boundaries (edges only go
    forward, so one pass in order is exact).
    """
    if wei_per_second is not None and wei_per_second <= 0:
        raise ValueError("wei_per_second must be > 0 (or None to ignore prices)")
    best = [math.inf] * (end - start + 1)
    back: list[tuple[int, ServerState] | None] = [None] * (end - start + 1)
    best[0] = 0.0
    for i in range(start, end):
        if best[i - start] == math.inf:
            continue
        for s in servers:
            if not s.start <= i < s.end:
                continue
            for j in range(i + 1, min(s.end, end) + 1):
                cost = best[i - start] + hop_cost(s, j - i, wei_per_second)
                if cost < best[j - start] - 1e-12:
                    best[j - start], back[j - start] = cost, (i, s)
    if best[end - start] == math.inf:
        return None
    hops, j = [], end
    while j > start:
        i, s = back[j - start]
        hops.append(Hop(s.address, i, j))
        j = i
    return hops[::-1]


def route_latency(servers: list[ServerState], hops: list[Hop]) -> float:
    by_addr = {s.address: s for s in servers}
    return sum(hop_cost(by_addr[h.address], h.end - h.start) for h in hops)


def route_price(servers: list[ServerState], hops: list[Hop]) -> int:
    """Wei per token along `hops` (sum of blocks x declared price)."""
    by_addr = {s.address: s for s in servers}
    return sum((h.end - h.start) * by_addr[h.address].price for h in hops)


def backoff_delay(failures: int, base: float = 0.5, cap: float = 60.0) -> float:
    """Exclusion time after `failures` consecutive failures: base * 2^(n-1), capped."""
    if failures <= 0:
        return 0.0
    return min(cap, base * 2 ** (failures - 1))


@dataclass
class BanList:
    """Consecutive failures per server and when each may be tried again (times passed in)."""

    base: float = 0.5
    cap: float = 60.0
    failures: dict[str, int] = field(default_factory=dict)
    until: dict[str, float] = field(default_factory=dict)

    def fail(self, address: str, now: float) -> float:
        n = self.failures.get(address, 0) + 1
        self.failures[address] = n
        self.until[address] = now + backoff_delay(n, self.base, self.cap)
        return self.until[address]

    def succeed(self, address: str) -> None:
        self.failures.pop(address, None)
        self.until.pop(address, None)

    def banned(self, address: str, now: float) -> bool:
        return self.until.get(address, -math.inf) > now

    def usable(self, servers: list[ServerState], now: float) -> list[ServerState]:
        return [s for s in servers if not self.banned(s.address, now)]
