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

import queue
import threading
import time
from concurrent.futures import Future
from typing import Callable, TypeVar

T = TypeVar("T")


class ComputeLoop:
    def __init__(self):
        self._tasks: queue.SimpleQueue = queue.SimpleQueue()

    def submit(self, fn: Callable[[], T]) -> T:
        """Run fn on the loop's thread and return its result (or raise its exception)."""
        future: Future = Future()
        self._tasks.put((fn, future))
        return future.result()

    def run(self, stop: threading.Event, housekeeping: Callable[[], object], period_s: float = 0.5) -> None:
        """Execute tasks until `stop` is set; call `housekeeping` about every period_s."""
        last = time.monotonic()
        while not stop.is_set():
            try:
                fn, future = self._tasks.get(timeout=period_s)
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(fn())
                    except BaseException as exc:  # noqa: BLE001 - delivered to the waiting handler
                        future.set_exception(exc)
            except queue.Empty:
                pass
            if time.monotonic() - last >= period_s:
                housekeeping()
                last = time.monotonic()


def direct(fn: Callable[[], T]) -> T:
    """Compute on the calling thread (in-process use, tests)."""
    return fn()
