"""Which queued compute task runs next: paid work first, the free tier never starved.

The compute loop (node/runtime.py) runs one task at a time. When several wait, a task from a
paying session (its vouchers are current: paid in native currency or with earned credit) runs
before a free-tier one, oldest first within a tier. Two bounds keep the free tier alive on a
busy server, whatever paying clients do:
  - age: a free task that has waited `max_free_wait_s` runs next (promoted ahead of paid work);
  - share: after `paid_burst` paid tasks in a row, a waiting free task runs.
So a free task waits at most min(max_free_wait_s, paid_burst paid tasks) plus the free tasks
queued before it, and paid work is delayed by at most one free task per `paid_burst`.

Batched sessions (node/batching.py): once a task is popped, `take` removes queued tasks that can
run in the same batch, without letting batching reorder tiers beyond these rules: paid tasks may
always join (they would run first anyway); free tasks join a paid-led batch only when no other paid
task waits (otherwise free work would run before paid work the scheduler puts first). Paid mates
count towards `paid_burst` like paid tasks run one by one.

Pure data structure with an injected clock, unit-tested without threads (tests/python/swarm/
test_scheduler.py); ComputeLoop puts a lock around it.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Callable


class Tier(IntEnum):
    PAID = 0  # vouchers current (native currency or earned credit)
    FREE = 1  # the free tier: served when no paid work waits, or when a bound says so


@dataclass(frozen=True)
class SchedulerConfig:
    max_free_wait_s: float = 2.0  # a free task waiting this long runs next
    paid_burst: int = 8  # at most this many paid tasks in a row while free work waits


@dataclass(order=True)
class _Entry:
    enqueued: float
    seq: int
    item: Any = field(compare=False)


class TieredQueue:
    def __init__(self, config: SchedulerConfig = SchedulerConfig()):
        if config.max_free_wait_s <= 0 or config.paid_burst < 1:
            raise ValueError("max_free_wait_s must be > 0 and paid_burst >= 1")
        self.config = config
        self._heaps: dict[Tier, list[_Entry]] = {Tier.PAID: [], Tier.FREE: []}
        self._seq = itertools.count()
        self._paid_in_a_row = 0
        self.served = {Tier.PAID: 0, Tier.FREE: 0}

    def __len__(self) -> int:
        return sum(len(h) for h in self._heaps.values())

    def put(self, item: Any, tier: Tier, now: float) -> None:
        heapq.heappush(self._heaps[Tier(tier)], _Entry(now, next(self._seq), item))

    def pop(self, now: float) -> tuple[Any, Tier]:
        """The next task and its tier; raises IndexError when empty."""
        tier = self._next_tier(now)
        entry = heapq.heappop(self._heaps[tier])
        self._paid_in_a_row = self._paid_in_a_row + 1 if tier is Tier.PAID else 0
        self.served[tier] += 1
        return entry.item, tier

    def _next_tier(self, now: float) -> Tier:
        paid, free = self._heaps[Tier.PAID], self._heaps[Tier.FREE]
        if not paid and not free:
            raise IndexError("pop from an empty TieredQueue")
        if not free:
            return Tier.PAID
        if not paid:
            return Tier.FREE
        starving = now - free[0].enqueued >= self.config.max_free_wait_s
        if starving or self._paid_in_a_row >= self.config.paid_burst:
            return Tier.FREE
        return Tier.PAID

    def take(self, match: Callable[[Any], bool], limit: int, lead: Tier) -> list[tuple[Any, Tier]]:
        """Remove and return up to `limit` queued items with match(item), oldest first: paid ones,
        then free ones if the popped lead task was free or no unmatched paid task remains."""
        paid = self._remove(Tier.PAID, match, limit)
        free = []
        if len(paid) < limit and (lead is Tier.FREE or not self._heaps[Tier.PAID]):
            free = self._remove(Tier.FREE, match, limit - len(paid))
        # the share bound counts tasks, not runs: paid mates count as paid tasks in a row
        self._paid_in_a_row = 0 if free else self._paid_in_a_row + len(paid)
        self.served[Tier.PAID] += len(paid)
        self.served[Tier.FREE] += len(free)
        return [(item, Tier.PAID) for item in paid] + [(item, Tier.FREE) for item in free]

    def _remove(self, tier: Tier, match: Callable[[Any], bool], limit: int) -> list[Any]:
        heap = self._heaps[tier]
        chosen = sorted(e for e in heap if match(e.item))[:limit]
        if chosen:
            ids = {id(e) for e in chosen}
            heap[:] = [e for e in heap if id(e) not in ids]
            heapq.heapify(heap)
        return [e.item for e in chosen]
