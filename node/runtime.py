"""Where the server's tensor compute runs: one loop on the process's main thread.

gRPC handlers run on pool threads; they hand each forward/backward/step to this loop and wait.
Handlers do no tensor work at all (decode, checks, compute, hashing, encode all run here).
Why: every OS thread that runs a torch parallel region gets its own OpenMP team; once more
OpenMP threads exist than cores, libgomp stops spinning between parallel regions and every
op pays a sleep/wake. Measured here with 2 torch threads: a 576x1536 matmul took 32 us, and
126 us once one gRPC-like thread had run a single torch matmul; SmolLM2's 30 blocks took
49 ms per decode step instead of 28 ms. One compute thread also serialises requests like
Petals' task pool, so concurrent sessions don't oversubscribe the cores.

Batched sessions: a task may carry a Batchable. When the loop pops one, it also takes the queued
tasks with the same key (TieredQueue.take: tier order kept) and runs them all through one
`run_many` call, e.g. one decode step for several sessions (node/batching.py). A lone task never
waits for company: only when the submitter says `expect` other tasks of its key are on their
way (sessions active right now) does the loop wait for them, at most `wait_s`. Without that
short wait two sessions settle into ping-pong, each arriving while the other computes.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable, Hashable, TypeVar

from node.scheduler import SchedulerConfig, Tier, TieredQueue

T = TypeVar("T")


@dataclass(frozen=True)
class Batchable:
    """What lets a task share a run with queued tasks of the same `key`: run_many(items) gets the
    `item` of each task in the batch (the popped one first) and returns one outcome per item, a
    result or an exception (delivered to that task only). At most `limit` tasks in a batch, and
    with a `budget`, at most that much summed `cost` (a lead over budget runs alone); when fewer
    than `expect` mates are queued, the loop waits up to `wait_s` for the others."""
    key: Hashable
    item: Any
    run_many: Callable[[list], list]
    limit: int = 8
    expect: int = 0
    wait_s: float = 0.0
    cost: int = 1  # this task's share of a batch's work (e.g. tokens)
    budget: int = 0  # most summed cost in one batch (0 = no bound but `limit`)


@dataclass
class _Task:
    fn: Callable[[], Any]
    future: Future
    batch: Batchable | None = None


class ComputeLoop:
    """Tasks wait in a TieredQueue (node/scheduler.py): paid work first, free tier bounded."""

    def __init__(self, scheduler: SchedulerConfig = SchedulerConfig(), clock=time.monotonic):
        self._queue = TieredQueue(scheduler)
        self._ready = threading.Condition()
        self._clock = clock

    def submit(self, fn: Callable[[], T], tier: Tier = Tier.FREE, batch: Batchable | None = None) -> T:
        """Run fn on the loop's thread and return its result (or raise its exception); with
        `batch`, possibly together with queued tasks of the same batch key (see the module doc)."""
        future: Future = Future()
        with self._ready:
            self._queue.put(_Task(fn, future, batch), tier, self._clock())
            self._ready.notify()
        return future.result()

    @property
    def served(self) -> dict[Tier, int]:
        return dict(self._queue.served)

    def _next(self, timeout_s: float) -> list[_Task]:
        """The next task and its batch mates (possibly none); [] when nothing came."""
        with self._ready:
            if not len(self._queue):
                self._ready.wait(timeout_s)
            if not len(self._queue):
                return []
            lead, tier = self._queue.pop(self._clock())
            if lead.batch is None or lead.batch.limit <= 1:
                return [lead]
            return [lead] + self._mates(lead.batch, tier)

    def _mates(self, batch: Batchable, tier: Tier) -> list[_Task]:
        """Queued tasks of batch.key (up to limit - 1), waiting at most batch.wait_s while fewer
        than batch.expect have come. Called with self._ready held (wait releases it)."""
        want, mates = min(batch.expect, batch.limit - 1), []
        deadline = time.monotonic() + batch.wait_s
        while True:
            room = batch.budget - batch.cost - sum(m.batch.cost for m in mates) if batch.budget else None
            mates += self._take(batch, tier, batch.limit - 1 - len(mates), room)
            left = deadline - time.monotonic()
            if len(mates) >= want or left <= 0:
                return mates
            self._ready.wait(left)

    def _take(self, batch: Batchable, tier: Tier, n: int, room: int | None) -> list[_Task]:
        """Up to n queued tasks of batch.key, oldest first, whose costs fit in `room` (None = any)."""
        def same(t: _Task) -> bool:
            return t.batch is not None and t.batch.key == batch.key

        if room is None:
            return [task for task, _ in self._queue.take(same, n, tier)]
        got: list[_Task] = []
        while len(got) < n:
            one = self._queue.take(lambda t: same(t) and t.batch.cost <= room, 1, tier)
            if not one:
                return got
            got.append(one[0][0])
            room -= got[-1].batch.cost
        return got

    def run(self, stop: threading.Event, housekeeping: Callable[[], object], period_s: float = 0.5) -> None:
        """Execute tasks until `stop` is set; call `housekeeping` about every period_s."""
        last = time.monotonic()
        while not stop.is_set():
            execute(self._next(period_s))
            if time.monotonic() - last >= period_s:
                housekeeping()
                last = time.monotonic()


def execute(tasks: list[_Task]) -> None:
    """Run one task through its fn, or several through the lead's run_many; settle the futures."""
    tasks = [t for t in tasks if t.future.set_running_or_notify_cancel()]
    outcomes = [_outcome(tasks[0].fn)] if len(tasks) == 1 else _batch_outcomes(tasks)
    for task, outcome in zip(tasks, outcomes):
        if isinstance(outcome, BaseException):
            task.future.set_exception(outcome)
        else:
            task.future.set_result(outcome)


def _batch_outcomes(tasks: list[_Task]) -> list:
    if not tasks:
        return []
    out = _outcome(lambda: tasks[0].batch.run_many([t.batch.item for t in tasks]))
    if isinstance(out, BaseException):
        return [out] * len(tasks)
    if len(out) != len(tasks):
        return [RuntimeError(f"run_many gave {len(out)} outcomes for {len(tasks)} tasks")] * len(tasks)
    return out


def _outcome(fn: Callable[[], Any]):
    """fn()'s result, or the exception it raised (delivered to the waiting handler)."""
    try:
        return fn()
    except BaseException as exc:  # noqa: BLE001 - delivered to the waiting handler
        return exc


def direct(fn: Callable[[], T], tier: Tier = Tier.FREE, batch: Batchable | None = None) -> T:
    """Compute on the calling thread (in-process use, tests); never batched."""
    return fn()
