"""Human-readable progress for long transfers (a `Progress` callable that prints to stderr)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class TextProgress:
    """`progress(done, total)` that prints `label: 12.0/517.0 MB (23%) 85.1 MB/s` at most
    every `interval` seconds, and once when the transfer completes."""

    def __init__(self, label: str, stream: TextIO | None = None, interval: float = 0.5):
        self.label, self.stream, self.interval = label, stream or sys.stderr, interval
        self.start = time.monotonic()
        self.last = 0.0
        self.finished = False

    def __call__(self, done: int, total: int | None) -> None:
        now = time.monotonic()
        complete = total is not None and done >= total
        if self.finished or (now - self.last < self.interval and not complete):
            return
        self.last, self.finished = now, complete
        rate = done / max(now - self.start, 1e-6) / 1e6
        of = f"/{total / 1e6:.1f} MB ({100 * done // max(total, 1)}%)" if total else " MB"
        print(f"{self.label}: {done / 1e6:.1f}{of} {rate:.1f} MB/s", file=self.stream, flush=True)
