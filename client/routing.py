"""Routing: pick a chain of servers covering blocks [start, end) at minimum estimated cost.

Cost is latency, plus price when the client says what a second is worth to it: a hop costs
rtt + blocks x block_time + blocks x price / wei_per_second (price: wei per block per token,
what the server declares in the escrow; wei_per_second: what the client would pay to save one
second per token). Without wei_per_second, price is ignored (minimum latency).

Pure functions over plain data (no network): the client feeds them what `Info` calls and
measured round trips told it. Overlapping spans are fine: a hop may use any sub-span of a
server's span. Failing servers are excluded for a backoff period (`BanList`).

Privacy filter (`ServerFilter`): `allowed` / `blocked` rules name servers by "host:port" or by
operator / signer address, each optionally for blocks [START, END) only ("WHO@START:END"); the
filter clips every server to the blocks it may run, so no route ever uses a server outside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from client.errors import MissingBlocksError


@dataclass(frozen=True)
class ServerState:
    address: str  # "host:port"
    start: int  # served span [start, end)
    end: int
    throughput: float  # decode tokens/s through the whole span (server's own estimate)
    rtt: float = 0.001  # measured round trip, seconds
    load: float = 0.0  # active sessions / max sessions, 0..1
    price: int = 0  # wei per block per token (the server's declared price; 0 = free)
    operator: str = ""  # operator address (registry's or Info's), for ServerFilter rules
    signer: str = ""  # signer address receipts recover to

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


# ---- privacy filter --------------------------------------------------------------------------
@dataclass(frozen=True)
class ServerRule:
    """One server ("host:port", or an operator / signer 0x address), for blocks [start, end)
    (end None = to the last block)."""

    who: str
    start: int = 0
    end: int | None = None

    def names(self, s: ServerState) -> bool:
        return self.who in (s.address.lower(), s.operator.lower(), s.signer.lower())

    def covers(self, block: int) -> bool:
        return self.start <= block and (self.end is None or block < self.end)

    def __str__(self) -> str:
        return self.who if (self.start, self.end) == (0, None) else f"{self.who}@{self.start}:{self.end or ''}"


def parse_rule(text: str) -> ServerRule:
    """"WHO" or "WHO@START:END" (END may be empty: to the last block) -> ServerRule."""
    who, at, span = str(text).strip().rpartition("@") if "@" in str(text) else (str(text).strip(), "", "")
    if not who:
        raise ValueError(f"server rule {text!r}: expected host:port, an 0x address, or WHO@START:END")
    if not at:
        return ServerRule(who.lower())
    first, colon, last = span.partition(":")
    try:
        start, end = int(first or 0), (int(last) if last else None)
    except ValueError:
        raise ValueError(f"server rule {text!r}: the blocks after @ must be START:END integers") from None
    if not colon or start < 0 or (end is not None and end <= start):
        raise ValueError(f"server rule {text!r}: expected WHO@START:END with 0 <= START < END")
    return ServerRule(who.lower(), start, end)


def parse_rules(spec) -> tuple[ServerRule, ...]:
    """Rules from a comma-separated string, an iterable of strings / ServerRule, or a mapping
    {who: None | (start, end)}."""
    if isinstance(spec, str):
        spec = [part for part in spec.split(",") if part.strip()]
    if isinstance(spec, dict):
        return tuple(ServerRule(str(who).lower()) if span is None else
                     parse_rule(f"{who}@{span[0]}:{'' if span[1] is None else span[1]}")
                     for who, span in spec.items())
    return tuple(r if isinstance(r, ServerRule) else parse_rule(r) for r in spec)


@dataclass(frozen=True)
class ServerFilter:
    """Which servers may run which blocks: `allowed` None = any server not blocked."""

    allowed: tuple[ServerRule, ...] | None = None
    blocked: tuple[ServerRule, ...] = ()

    @classmethod
    def of(cls, allowed=None, blocked=None) -> "ServerFilter":
        return cls(None if allowed is None else parse_rules(allowed), parse_rules(blocked or ()))

    @property
    def active(self) -> bool:
        return self.allowed is not None or bool(self.blocked)

    def may_run(self, s: ServerState, block: int) -> bool:
        if any(r.names(s) and r.covers(block) for r in self.blocked):
            return False
        return self.allowed is None or any(r.names(s) and r.covers(block) for r in self.allowed)

    def apply(self, servers: list[ServerState]) -> list[ServerState]:
        """Each server clipped to the maximal runs of blocks it may run (possibly several
        pieces, possibly none); the per-block time estimate is kept."""
        out = []
        for s in servers:
            ok = [b for b in range(s.start, s.end) if self.may_run(s, b)]
            for a, b in _runs(ok):
                out.append(s if (a, b) == (s.start, s.end) else
                           replace(s, start=a, end=b, throughput=s.throughput * (s.end - s.start) / (b - a)))
        return out

    def __str__(self) -> str:
        parts = [] if self.allowed is None else [f"allowed: {', '.join(map(str, self.allowed)) or '(none)'}"]
        return "; ".join(parts + ([f"blocked: {', '.join(map(str, self.blocked))}"] if self.blocked else []))


def _runs(blocks: list[int]) -> list[tuple[int, int]]:
    """Sorted block indices -> maximal [a, b) runs of consecutive ones."""
    runs: list[tuple[int, int]] = []
    for b in blocks:
        if runs and runs[-1][1] == b:
            runs[-1] = (runs[-1][0], b + 1)
        else:
            runs.append((b, b + 1))
    return runs


class NoAllowedRoute(MissingBlocksError):
    """Blocks no server passing the client's ServerFilter covers."""

    def __init__(self, gaps: list[tuple[int, int]], num_blocks: int, server_filter: ServerFilter,
                 excluded: list[str] = ()):
        super().__init__(gaps, num_blocks, excluded)
        self.server_filter = server_filter
        self.args = (f"no allowed route: {self.args[0].replace('no reachable server', 'no server passing the filter')}"
                     f" [filter {server_filter}]",)
