"""An emulated network link as a userspace TCP proxy: one-way delay plus a bandwidth cap.

This kernel has no `netem`, so latency is added here: every chunk read on one side is delivered
to the other after the time it takes to serialise it onto a link of `mbit` Mbit/s (queued behind
earlier chunks in the same direction) plus `rtt_ms / 2` of propagation. Order is preserved. Each
direction of each proxied server is one link, shared by all connections to it.

    python benchmarks/netlink.py --listen 127.0.0.1:0 --target 127.0.0.1:5001 --rtt-ms 100 --mbit 100
    # prints "listening 127.0.0.1:PORT", then proxies until killed
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass


@dataclass
class Link:
    """One direction: `free_at` is when the link finishes sending what is already queued."""

    mbit: float  # bandwidth, Mbit/s (0 = unlimited)
    delay_s: float  # one-way propagation delay
    free_at: float = 0.0

    def deliver_at(self, now: float, nbytes: int) -> float:
        start = max(now, self.free_at)
        self.free_at = start + (nbytes * 8 / (self.mbit * 1e6) if self.mbit else 0.0)
        return self.free_at + self.delay_s


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: Link) -> None:
    queue: asyncio.Queue = asyncio.Queue()

    async def deliver():
        while (item := await queue.get()) is not None:
            at, chunk = item
            if (wait := at - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            writer.write(chunk)
            await writer.drain()
        writer.close()

    sender = asyncio.create_task(deliver())
    try:
        while chunk := await reader.read(1 << 16):
            queue.put_nowait((link.deliver_at(time.monotonic(), len(chunk)), chunk))
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        queue.put_nowait(None)
        await sender


async def serve(listen: str, target: str, rtt_ms: float, mbit: float, ready=print) -> None:
    up, down = Link(mbit, rtt_ms / 2e3), Link(mbit, rtt_ms / 2e3)
    thost, tport = target.rsplit(":", 1)

    async def handle(client_r, client_w):
        try:
            server_r, server_w = await asyncio.open_connection(thost, int(tport))
        except OSError:
            client_w.close()
            return
        await asyncio.gather(_pump(client_r, server_w, up), _pump(server_r, client_w, down),
                             return_exceptions=True)

    host, port = listen.rsplit(":", 1)
    server = await asyncio.start_server(handle, host, int(port))
    sock = server.sockets[0].getsockname()
    ready(f"listening {sock[0]}:{sock[1]}")
    async with server:
        await server.serve_forever()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--target", required=True, help="host:port to forward to")
    ap.add_argument("--rtt-ms", type=float, default=0.0, help="added round-trip time")
    ap.add_argument("--mbit", type=float, default=0.0, help="bandwidth per direction (0 = unlimited)")
    args = ap.parse_args()
    asyncio.run(serve(args.listen, args.target, args.rtt_ms, args.mbit,
                      ready=lambda line: print(line, flush=True)))


if __name__ == "__main__":
    main()
