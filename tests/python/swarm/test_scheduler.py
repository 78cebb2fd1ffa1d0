"""The compute loop's scheduler: paid work first, the free tier bounded by age and by share."""

from __future__ import annotations

import threading
import time

import pytest

from node.runtime import ComputeLoop
from node.scheduler import SchedulerConfig, Tier, TieredQueue


def drain(q: TieredQueue, now: float) -> list:
    out = []
    while len(q):
        out.append(q.pop(now)[0])
    return out


def test_paid_runs_first_fifo_within_a_tier():
    q = TieredQueue(SchedulerConfig(max_free_wait_s=10, paid_burst=100))
    for i, tier in enumerate([Tier.FREE, Tier.PAID, Tier.FREE, Tier.PAID]):
        q.put(f"{tier.name.lower()}{i}", tier, now=float(i) / 10)
    assert drain(q, now=1.0) == ["paid1", "paid3", "free0", "free2"]


def test_a_flood_of_paid_work_cannot_starve_the_free_tier_by_share():
    """The attack: a paying client keeps the queue full to lock free users out."""
    q = TieredQueue(SchedulerConfig(max_free_wait_s=1e9, paid_burst=4))
    q.put("free", Tier.FREE, now=0.0)
    for i in range(20):
        q.put(f"paid{i}", Tier.PAID, now=0.0)
    order = drain(q, now=0.0)
    assert order.index("free") == 4  # after exactly paid_burst paid tasks
    assert [x for x in order if x != "free"] == [f"paid{i}" for i in range(20)]  # paid order kept


def test_a_free_task_that_waited_too_long_runs_next():
    q = TieredQueue(SchedulerConfig(max_free_wait_s=2.0, paid_burst=1000))
    q.put("free", Tier.FREE, now=0.0)
    q.put("paid", Tier.PAID, now=1.9)
    assert q.pop(now=1.9)[0] == "paid"  # not yet starving
    q.put("paid2", Tier.PAID, now=2.0)
    assert q.pop(now=2.0) == ("free", Tier.FREE)
    assert q.served == {Tier.PAID: 1, Tier.FREE: 1}


def test_bad_config_and_empty_pop_are_clear():
    with pytest.raises(ValueError, match="paid_burst"):
        TieredQueue(SchedulerConfig(paid_burst=0))
    with pytest.raises(IndexError, match="empty"):
        TieredQueue().pop(0.0)


def test_compute_loop_serves_paid_before_queued_free_work():
    loop, stop, order = ComputeLoop(SchedulerConfig(max_free_wait_s=60, paid_burst=100)), threading.Event(), []
    gate = threading.Event()
    runner = threading.Thread(target=loop.run, args=(stop, lambda: None, 0.05), daemon=True)
    runner.start()
    blocker = threading.Thread(target=loop.submit, args=(gate.wait,))  # occupies the loop
    blocker.start()
    time.sleep(0.1)
    threads = [threading.Thread(target=loop.submit, args=(lambda n=n: order.append(n), tier))
               for n, tier in [("free-a", Tier.FREE), ("free-b", Tier.FREE), ("paid", Tier.PAID)]]
    for t in threads:
        t.start()
        time.sleep(0.05)  # enqueue in this order
    gate.set()
    for t in [blocker, *threads]:
        t.join(5)
    stop.set()
    runner.join(5)
    assert order == ["paid", "free-a", "free-b"]
    assert loop.served == {Tier.PAID: 1, Tier.FREE: 3}
    with pytest.raises(ZeroDivisionError):  # a task's exception reaches its submitter, loop unharmed
        stop.clear()
        threading.Thread(target=loop.run, args=(stop, lambda: None, 0.05), daemon=True).start()
        try:
            loop.submit(lambda: 1 / 0)
        finally:
            assert loop.submit(lambda: 7) == 7
            stop.set()
