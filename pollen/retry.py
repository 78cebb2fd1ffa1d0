"""The one retry-with-backoff helper Pollen uses for flaky I/O (RPC nodes, peers, IPFS), and the
one poll-until helper for waiting on a chain or a process (`wait_until`)."""

from __future__ import annotations

import random
import time
from typing import Callable, TypeVar

T = TypeVar("T")


def retry(
    call: Callable[[], T],
    *,
    retry_on: tuple[type[BaseException], ...],
    attempts: int = 5,
    base_delay: float = 0.2,
    max_delay: float = 5.0,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call `call()` until it succeeds, retrying `retry_on` errors with jittered exponential
    backoff (base_delay * 2**n, capped at max_delay). The last error propagates unchanged."""
    if attempts < 1:
        raise ValueError("attempts must be >= 1")
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except retry_on as exc:
            if attempt == attempts:
                raise
            delay = min(max_delay, base_delay * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
            if on_retry is not None:
                on_retry(attempt, exc, delay)
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def wait_until(done: Callable[[], bool], timeout_s: float, timed_out: Callable[[], BaseException], *,
               poll_s: float = 0.2, sleep: Callable[[float], None] = time.sleep,
               clock: Callable[[], float] = time.monotonic) -> None:
    """Poll `done()` every `poll_s` until it is true; past `timeout_s` raise `timed_out()`
    (an error that says what did not happen and what to check)."""
    deadline = clock() + timeout_s
    while not done():
        if clock() > deadline:
            raise timed_out()
        sleep(poll_s)
