"""Where the server's tensor compute runs: one loop on the process's main thread.

gRPC handlers run on pool threads; they hand each forward/backward/step to this loop and wait.
Handlers do no tensor work at all (decode, checks, compute, hashing, encode all run here).
Why: every OS thread that runs a torch parallel region gets its own OpenMP team; once more
OpenMP threads exist than cores, libgomp stops spinning between parallel regions and every
op pays a sleep/wake. Measured here with 2 torch threads: a 576x1536 matmul took 32 us, and
126 us once one gRPC-like thread had run a single torch matmul; SmolLM2's 30 blocks took
49 ms per decode step instead of 28 ms. One compute thread also serialises requests like
Petals' task pool, so concurrent sessions don't oversubscribe the cores.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from typing import Callable, TypeVar

from node.scheduler import SchedulerConfig, Tier, TieredQueue

T = TypeVar("T")


class ComputeLoop:
    """Tasks wait in a TieredQueue (node/scheduler.py): paid work first, free tier bounded."""

    def __init__(self, scheduler: SchedulerConfig = SchedulerConfig(), clock=time.monotonic):
        self._queue = TieredQueue(scheduler)
        self._ready = threading.Condition()
        self._clock = clock

    def submit(self, fn: Callable[[], T], tier: Tier = Tier.FREE) -> T:
        """Run fn on the loop's thread and return its result (or raise its exception)."""
        future: Future = Future()
        with self._ready:
            self._queue.put((fn, future), tier, self._clock())
            self._ready.notify()
        return future.result()

    @property
    def served(self) -> dict[Tier, int]:
        return dict(self._queue.served)

    def _next(self, timeout_s: float):
        with self._ready:
            if not len(self._queue):
                self._ready.wait(timeout_s)
            if not len(self._queue):
                return None
            return self._queue.pop(self._clock())[0]

    def run(self, stop: threading.Event, housekeeping: Callable[[], object], period_s: float = 0.5) -> None:
        """Execute tasks until `stop` is set; call `housekeeping` about every period_s."""
        last = time.monotonic()
        while not stop.is_set():
            task = self._next(period_s)
            if task is not None:
                fn, future = task
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(fn())
                    except BaseException as exc:  # noqa: BLE001 - delivered to the waiting handler
                        future.set_exception(exc)
            if time.monotonic() - last >= period_s:
                housekeeping()
                last = time.monotonic()


def direct(fn: Callable[[], T], tier: Tier = Tier.FREE) -> T:
    """Compute on the calling thread (in-process use, tests)."""
    return fn()
