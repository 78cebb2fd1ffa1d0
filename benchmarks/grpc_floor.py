"""The floor under a Pollen hop on this machine: gRPC echo round trips with no Pollen code at all.

A server process (this script with --serve) echoes bytes back over a unary RPC and over a
bidirectional stream; the client, in its own process as Pollen's client is, times round trips of
a decode step's message size (a (1, 1, hidden) fp32 tensor plus ~250 bytes of receipt fields).
A per-hop overhead target below the stream echo cannot be met by any design that keeps Python
gRPC streams on this machine; compare with benchmarks/hop_overhead.py.

    .venv/bin/python benchmarks/grpc_floor.py                 # hidden 512, 5 rounds x 400 round trips
    .venv/bin/python benchmarks/grpc_floor.py --hidden 576 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import platform
import queue
import statistics
import subprocess
import sys
import time
from concurrent import futures

import grpc


def _same(b: bytes) -> bytes:
    return b


def serve() -> None:
    def unary(request, context):
        return request

    def stream(requests, context):
        yield from requests

    handler = grpc.method_handlers_generic_handler("floor.Echo", {
        "Unary": grpc.unary_unary_rpc_method_handler(unary, _same, _same),
        "Stream": grpc.stream_stream_rpc_method_handler(stream, _same, _same)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    sys.stdin.read()  # until the client closes our stdin
    server.stop(0)


def timed_us(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - t0) / 1e3)
    return out


def measure(port: int, size: int, rounds: int, n: int) -> dict[str, list[float]]:
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    unary = channel.unary_unary("/floor.Echo/Unary", _same, _same)
    stream = channel.stream_stream("/floor.Echo/Stream", _same, _same)
    payload = os.urandom(size)
    sends: queue.Queue = queue.Queue()
    replies = stream(iter(sends.get, None))

    def stream_rt():
        sends.put(payload)
        next(replies)

    for _ in range(50):  # warm-up: connection, first calls
        unary(payload)
        stream_rt()
    out = {"unary": [], "stream": []}
    for _ in range(rounds):  # interleaved
        out["unary"] += timed_us(lambda: unary(payload), n)
        out["stream"] += timed_us(stream_rt, n)
    sends.put(None)
    channel.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--hidden", type=int, default=512, help="hidden size of the (1, 1, hidden) fp32 message")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n", type=int, default=400, help="round trips per round and kind")
    args = ap.parse_args()
    if args.serve:
        return serve()
    size = 4 * args.hidden + 250
    server = subprocess.Popen([sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        port = int(server.stdout.readline())
        out = measure(port, size, args.rounds, args.n)
    finally:
        server.stdin.close()
        server.wait(10)
    print(f"`python benchmarks/grpc_floor.py --hidden {args.hidden} --rounds {args.rounds} --n {args.n}` — "
          f"{platform.machine()}, {os.cpu_count()} CPUs, grpcio {grpc.__version__}, {size}-byte messages, "
          f"client and echo server in separate processes; load average {os.getloadavg()[0]:.2f}\n")
    print("| round trip | median us | p10 us | p90 us |\n|---|---:|---:|---:|")
    for kind, label in (("unary", "unary RPC"), ("stream", "one message each way on an open bidi stream")):
        q = statistics.quantiles(out[kind], n=10)
        print(f"| {label} | {statistics.median(out[kind]):.0f} | {q[0]:.0f} | {q[-1]:.0f} |")


if __name__ == "__main__":
    main()
