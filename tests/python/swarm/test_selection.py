"""Unit tests of block selection (pure functions)."""

from __future__ import annotations

import pytest

from node.selection import block_throughputs, choose_start, should_move, swarm_throughput


def test_throughput_per_block():
    assert block_throughputs([(0, 2, 10.0), (1, 4, 5.0)], 4) == [10.0, 15.0, 5.0, 5.0]


def test_empty_swarm_starts_at_zero():
    assert choose_start([], 10, 4) == 0


def test_joins_uncovered_region():
    spans = [(0, 4, 10.0), (4, 6, 10.0)]
    assert choose_start(spans, 10, 4) == 6


def test_joins_weakest_region():
    spans = [(0, 5, 100.0), (5, 10, 3.0)]
    assert choose_start(spans, 10, 5) == 5


def test_ties_broken_by_total_then_position():
    spans = [(0, 10, 10.0), (0, 3, 5.0)]
    assert choose_start(spans, 10, 3) == 3


def test_bad_length():
    with pytest.raises(ValueError):
        choose_start([], 4, 5)


def test_should_move_when_a_gap_opens():
    me = (0, 4, 10.0)
    others = [(0, 4, 10.0)]  # duplicate coverage of [0, 4); [4, 8) empty
    move, start = should_move(me, others, 8)
    assert move and start == 4


def test_should_not_move_when_balanced():
    me = (0, 4, 10.0)
    others = [(4, 8, 10.0)]
    assert should_move(me, others, 8) == (False, 0)


def test_small_gain_below_threshold_does_not_move():
    me = (0, 4, 10.0)
    others = [(0, 4, 9.0), (4, 8, 17.0)]
    # moving to [4, 8) lifts the bottleneck from 17 to 19 (<1/0.75 gain): stay
    move, _ = should_move(me, others, 8)
    assert not move
    assert swarm_throughput(others + [me], 8) == 17.0
