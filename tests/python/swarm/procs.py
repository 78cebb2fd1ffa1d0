"""Start / stop real block-server processes (`python -m pollen.cli serve`) on free ports."""

from __future__ import annotations

import json
import os
import queue
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


@dataclass
class ServerProc:
    proc: subprocess.Popen
    blocks: tuple[int, int]
    port: int = 0
    signer: str = ""

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def spawn(model: Path, blocks: tuple[int, int] | str, *extra: str, log_dir: Path | None = None,
          threads: int = 1) -> ServerProc:
    """Start `pollen serve`; `blocks` is (start, end) or "auto" (block selection)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": str(threads),
           "PYTHONPATH": str(ROOT)}
    span = "auto" if blocks == "auto" else f"{blocks[0]}:{blocks[1]}"
    log = open(log_dir / f"server-{span.replace(':', '-')}-{time.monotonic_ns()}.log", "w") \
        if log_dir else subprocess.DEVNULL
    cmd = [sys.executable, "-m", "pollen.cli", "serve", "--model", str(model),
           "--blocks", span, "--port", "0", "--torch-threads", str(threads), *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, cwd=ROOT, env=env, text=True)
    return ServerProc(proc, blocks)


def wait_ready(servers: list[ServerProc], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    for s in servers:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or s.proc.poll() is not None:
                raise RuntimeError(f"server {s.blocks} did not start (exit {s.proc.poll()})")
            ready, _, _ = select.select([s.proc.stdout], [], [], left)
            if ready:
                line = s.proc.stdout.readline()
                if line.startswith("{"):
                    event = json.loads(line)
                    s.port, s.signer, s.blocks = event["port"], event["signer"], tuple(event["blocks"])
                    break


def start(model: Path, spans, *extra: str, log_dir: Path | None = None, threads: int = 1) -> list[ServerProc]:
    servers = [spawn(model, span, *extra, log_dir=log_dir, threads=threads) for span in spans]
    try:
        wait_ready(servers)
    except Exception:
        stop_all(servers)
        raise
    return servers


def stop_all(servers: list[ServerProc]) -> None:
    for s in servers:  # signal all first, then wait: shutdowns overlap
        if s.proc.poll() is None:
            s.proc.send_signal(signal.SIGTERM)
    for s in servers:
        s.stop()


class Stream:
    """A client-side Inference stream driven one request at a time (send -> next response)."""

    def __init__(self, stub, timeout: float = 60):
        self.q = queue.SimpleQueue()
        self.responses = stub.Inference(iter(self.q.get, None), timeout=timeout)

    def send(self, request):
        self.q.put(request)
        return next(self.responses)
