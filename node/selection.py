"""Block selection: which span a joining server should serve, and when a server should move.

Pure functions over (start, end, throughput) triples. "Weakest coverage" = the window whose
minimum per-block throughput is lowest (ties: lowest total), as the swarm's speed is bounded by
its slowest block.
"""

from __future__ import annotations

Span = tuple[int, int, float]  # (start, end, throughput in tokens/s)


def block_throughputs(spans: list[Span], num_blocks: int) -> list[float]:
    """Sum of the throughputs of the servers covering each block."""
    totals = [0.0] * num_blocks
    for start, end, tp in spans:
        for b in range(max(0, start), min(end, num_blocks)):
            totals[b] += tp
    return totals


def choose_start(spans: list[Span], num_blocks: int, length: int) -> int:
    """Start of the length-`length` window with the weakest coverage."""
    if not 0 < length <= num_blocks:
        raise ValueError(f"span length {length} not in [1, {num_blocks}]")
    tp = block_throughputs(spans, num_blocks)
    windows = range(num_blocks - length + 1)
    return min(windows, key=lambda s: (min(tp[s:s + length]), sum(tp[s:s + length]), s))


def swarm_throughput(spans: list[Span], num_blocks: int) -> float:
    """The swarm's bottleneck: the least-covered block's throughput."""
    return min(block_throughputs(spans, num_blocks))


def should_move(mine: Span, others: list[Span], num_blocks: int, balance_quality: float = 0.75) -> tuple[bool, int]:
    """(move?, new start): move when the bottleneck would improve by more than 1/balance_quality."""
    start, end, tp = mine
    length = end - start
    new_start = choose_start(others, num_blocks, length)
    if new_start == start:
        return False, start
    current = swarm_throughput(others + [mine], num_blocks)
    moved = swarm_throughput(others + [(new_start, new_start + length, tp)], num_blocks)
    return moved > current / balance_quality, new_start
