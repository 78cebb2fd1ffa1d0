"""Server-to-server push vs client-relayed hops: decode steps/s behind emulated links.

Every server gets its own delaying TCP proxy (benchmarks/netlink.py) and is known to the client
only by the proxy's address, so a push from one server to the next (sent to the address the
client names) crosses the next server's delayed link too, like the client's own traffic. A
relayed decode step costs one RTT per server; a pushed one half an RTT per server plus half an
RTT (client -> first server, server -> server ..., last server -> client): 2 servers 2 -> 1.5
RTT, 3 servers 3 -> 2 RTT. Each (link, servers) pair is one client process that runs relayed and
pushed generations back to back (interleaved); numbers are medians.

    .venv/bin/python benchmarks/push.py                       # Llama 58M, 2 and 3 servers, 3 runs
    .venv/bin/python benchmarks/push.py --rtt-ms 100 --runs 5 --new-tokens 32
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests" / "python" / "swarm"))
sys.path.insert(0, str(ROOT))

from inference import model_path, prompt_ids, splits  # noqa: E402
from network import Proxy  # noqa: E402


# ---- worker: one client process per (link, servers), driven over stdin/stdout ------------------
def worker(path: str, peers: str, new: int) -> None:
    import torch

    from client import AutoDistributedModelForCausalLM
    from pollen.model import load_config

    model = AutoDistributedModelForCausalLM.from_pretrained(path, initial_peers=peers.split(","))
    ids = prompt_ids(path, load_config(path).vocab_size)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        model.push = None if line.split()[1] == "push" else False
        with torch.no_grad(), model.inference_session(max_length=ids.shape[1] + new) as sess:
            sess.push = model.push  # (also when from_pretrained's push= is not there)
            t0 = time.perf_counter()
            out = model.generate(ids, max_new_tokens=new, min_new_tokens=new, do_sample=False, session=sess)
            dt = time.perf_counter() - t0
        print(json.dumps({"s": dt, "ids": out[0].tolist(), "pushed": sess.pushed,
                          "fallbacks": sess.push_fallbacks}), flush=True)


class Client:
    def __init__(self, args, path, peers: list[str]):
        cmd = [sys.executable, __file__, "--worker", "--path", str(path), "--peers", ",".join(peers),
               "--new-tokens", str(args.new_tokens)]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, env=env)
        self._read()

    def _read(self) -> dict:
        while line := self.proc.stdout.readline():
            if line.startswith("{"):
                return json.loads(line)
        raise RuntimeError("benchmark client died")

    def gen(self, mode: str) -> dict:
        self.proc.stdin.write(f"gen {mode}\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(30)


# ---- parent ------------------------------------------------------------------------------------
def run(args) -> list[str]:
    import procs
    from pollen.model import family_of, load_config

    path = model_path(args.model)
    cfg = load_config(path)
    n_blocks = family_of(cfg).num_blocks(cfg)
    groups = {n: procs.start(path, splits(n_blocks, n), threads=args.threads) for n in args.servers}
    proxies, clients = [], {}
    try:
        for rtt in args.rtt_ms:
            for n, servers in groups.items():
                if rtt < 0:  # direct loopback, no proxy
                    peers = [s.address for s in servers]
                else:
                    links = [Proxy(s.address, rtt, args.mbit) for s in servers]
                    proxies += links
                    peers = [p.address for p in links]
                clients[(rtt, n)] = Client(args, path, peers)
        return measure(args, clients)
    finally:
        for c in clients.values():
            c.close()
        for p in proxies:
            p.close()
        for g in groups.values():
            procs.stop_all(g)


def measure(args, clients) -> list[str]:
    first = {(k, m): c.gen(m) for k, c in clients.items() for m in ("relay", "push")}  # warm-up + identity
    times = {key: [] for key in first}
    pushed = {key: [] for key in first}
    for _ in range(args.runs):
        for k, c in clients.items():
            for m in ("relay", "push"):
                r = c.gen(m)
                times[(k, m)].append(r["s"])
                pushed[(k, m)].append((r["pushed"], r["fallbacks"]))
    rows = [f"## {args.model}: decode steps/s (batch 1, {args.new_tokens} new tokens), relayed vs pushed, "
            f"medians of {args.runs}\n",
            "| link (added RTT per server) | servers | relayed steps/s | pushed steps/s | speedup | "
            "RTT bound relayed / pushed | pushed hops (fallbacks) | same tokens |",
            "|---|---:|---:|---:|---:|---:|---:|---|"]
    for (rtt, n) in clients:
        relay, push = (args.new_tokens / statistics.median(times[((rtt, n), m)]) for m in ("relay", "push"))
        bound = f"{1e3 / (n * rtt):.2f} / {1e3 / ((n + 1) / 2 * rtt):.2f}" if rtt > 0 else "–"
        p, f = pushed[((rtt, n), "push")][-1]
        same = "yes" if first[((rtt, n), "relay")]["ids"] == first[((rtt, n), "push")]["ids"] else "no"
        link = "loopback, direct" if rtt < 0 else f"{rtt:g} ms" + (f", {args.mbit:g} Mbit/s" if args.mbit else "")
        rows.append(f"| {link} | {n} | {relay:.2f} | {push:.2f} | {push / relay:.2f}x | {bound} | {p} ({f}) | "
                    f"{same} |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=["llama58m", "smollm2"], default="llama58m")
    ap.add_argument("--servers", type=int, nargs="+", default=[2, 3])
    ap.add_argument("--rtt-ms", type=float, nargs="+", default=[-1.0, 100.0],
                    help="added RTT per server link (-1 = direct loopback, no proxy)")
    ap.add_argument("--mbit", type=float, default=0.0, help="bandwidth per direction (0 = unlimited)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    ap.add_argument("--peers", help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.worker:
        return worker(args.path, args.peers, args.new_tokens)
    rows = run(args)
    print("\n".join(rows))
    print(f"\nreproduce: .venv/bin/python benchmarks/push.py --model {args.model} --servers "
          f"{' '.join(map(str, args.servers))} --rtt-ms {' '.join(f'{r:g}' for r in args.rtt_ms)} --mbit "
          f"{args.mbit:g} --runs {args.runs} --new-tokens {args.new_tokens} --threads {args.threads}")


if __name__ == "__main__":
    main()
