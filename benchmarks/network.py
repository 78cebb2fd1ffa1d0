"""The paper's network rows: a 2-server swarm behind emulated links (benchmarks/netlink.py).

Each server gets its own delaying, bandwidth-capped TCP proxy; the client reaches the servers only
through them. Every repetition measures every profile back to back (interleaved); numbers are
medians. Decode is batch 1 (steps/s = tokens/s); parallel forward is 128 tokens at batch 1 and 8.

    .venv/bin/python benchmarks/network.py                  # Llama 58M (h512, 8 layers), 3 runs
    .venv/bin/python benchmarks/network.py --model smollm2 --runs 5 --new-tokens 32

Hops are client-relayed today (client -> server 1 -> client -> server 2 -> client), so a decode
step costs at least one RTT per server; the "RTT bound" column is that floor.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests" / "python" / "swarm"))
sys.path.insert(0, str(ROOT))

from inference import Worker, model_path, splits  # noqa: E402

# name -> (added RTT in ms, Mbit/s per direction; 0 = unlimited); None = direct loopback
PROFILES = {
    "loopback, direct": None,
    "proxy only (0 ms, unlimited)": (0.0, 0.0),
    "1 Gbit/s, 5 ms RTT": (5.0, 1000.0),
    "100 Mbit/s, 5 ms RTT": (5.0, 100.0),
    "100 Mbit/s, 100 ms RTT": (100.0, 100.0),
}


class Proxy:
    def __init__(self, target: str, rtt_ms: float, mbit: float):
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "benchmarks" / "netlink.py"), "--target", target,
             "--rtt-ms", str(rtt_ms), "--mbit", str(mbit)],
            stdout=subprocess.PIPE, text=True, start_new_session=True)
        line = self.proc.stdout.readline()
        if not line.startswith("listening "):
            raise RuntimeError(f"netlink proxy for {target} did not start")
        self.address = line.split()[1]

    def close(self):
        self.proc.kill()
        self.proc.wait(10)


def run(args) -> list[str]:
    import procs
    from pollen.model import family_of, load_config

    path = model_path(args.model)
    cfg = load_config(path)
    servers = procs.start(path, splits(family_of(cfg).num_blocks(cfg), 2), threads=args.threads)
    proxies, workers = [], {}
    try:
        for name, link in PROFILES.items():
            if link is None:
                peers = [s.address for s in servers]
            else:
                pair = [Proxy(s.address, *link) for s in servers]
                proxies += pair
                peers = [p.address for p in pair]
            workers[name] = Worker(args, "swarm", path, ",".join(peers))
        return measure(args, workers)
    finally:
        for w in workers.values():
            w.close()
        for p in proxies:
            p.close()
        procs.stop_all(servers)


def measure(args, workers) -> list[str]:
    first = {k: w.ask("gen")["ids"] for k, w in workers.items()}  # warm-up + identity
    gen, fwd1, fwd8 = ({k: [] for k in workers} for _ in range(3))
    for _ in range(args.runs):
        for k, w in workers.items():
            gen[k].append(w.ask("gen")["s"])
            fwd1[k].append(w.ask("fwd 1")["s"])
            fwd8[k].append(w.ask("fwd 8")["s"])
    base = "loopback, direct"
    rows = [f"## {args.model}: 2 servers, {args.new_tokens} new tokens (decode, batch 1) and 128-token "
            f"parallel forward, medians of {args.runs}\n",
            "| link | decode steps/s | RTT bound | forward batch 1 tok/s | forward batch 8 tok/s | "
            "same tokens |", "|---|---:|---:|---:|---:|---|"]
    for k in workers:
        steps = args.new_tokens / statistics.median(gen[k])
        rtt = (PROFILES[k] or (0.0, 0.0))[0]
        bound = f"{1e3 / (2 * rtt):.1f}" if rtt else "–"
        f1, f8 = 128 / statistics.median(fwd1[k]), 8 * 128 / statistics.median(fwd8[k])
        same = "yes" if first[k] == first[base] else "no"
        rows.append(f"| {k} | {steps:.2f} | {bound} | {f1:.0f} | {f8:.0f} | {same} |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=["llama58m", "smollm2"], default="llama58m")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    rows = run(args)
    print("\n".join(rows))
    print(f"\nreproduce: .venv/bin/python benchmarks/network.py --model {args.model} --runs {args.runs} "
          f"--new-tokens {args.new_tokens} --threads {args.threads}")


if __name__ == "__main__":
    main()
