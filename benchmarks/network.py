"""The paper's network rows: Pollen and Petals 2.2, 2 servers each, behind emulated links.

Each server gets its own delaying, bandwidth-capped TCP proxy (benchmarks/netlink.py); the client
reaches the servers only through them. Petals' servers (benchmarks/petals_ref.py, in the venv of
benchmarks/petals_env.sh) announce their proxy's address (`--announce_maddrs`), so every libp2p
connection to a server, the client's and the previous server's, crosses that server's proxy.
Per row, Pollen and Petals run alternately (interleaved) in every repetition; numbers are
medians. Decode is batch 1 greedy (steps/s = tokens/s); parallel forward is 128 tokens at batch
1 and 8. Without the Petals venv the Petals columns say so and Pollen still runs.

    .venv/bin/python benchmarks/network.py                  # Llama 58M (h512, 8 layers), 3 runs
    .venv/bin/python benchmarks/network.py --model smollm2 --runs 5 --new-tokens 32
    .venv/bin/python benchmarks/network.py --rows loopback,100ms --petals off

Both push hidden states server to server within a decode step (client -> server 1 -> server 2 ->
client), so a step costs at least 1.5 RTT with 2 servers: the "1.5-RTT floor" column.
"""

from __future__ import annotations

import argparse
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

import petals_ref  # noqa: E402
from inference import Worker, model_path, prompt_ids, splits  # noqa: E402

# name -> (short name for --rows, link): link is (added RTT in ms, Mbit/s per direction;
# 0 = unlimited), None = direct loopback
PROFILES = {
    "loopback, direct": ("loopback", None),
    "proxy only (0 ms, unlimited)": ("proxy", (0.0, 0.0)),
    "1 Gbit/s, 5 ms RTT": ("1g5ms", (5.0, 1000.0)),
    "100 Mbit/s, 5 ms RTT": ("100m5ms", (5.0, 100.0)),
    "100 Mbit/s, 100 ms RTT": ("100ms", (100.0, 100.0)),
}
GOALS = {"loopback, direct": 1.6, "100 Mbit/s, 100 ms RTT": 1.5}  # Pollen/Petals decode, issue #13


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


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


# ---- one row: Pollen's worker (always) and a Petals swarm + client (when available) -------------
class PetalsRow:
    """A 2-server Petals swarm for one link profile, its proxies and its client."""

    def __init__(self, args, path: Path, spans, link, ids: list[int]):
        self.proxies: list[Proxy] = []

        def proxy(port: int) -> int:
            p = Proxy(f"127.0.0.1:{port}", *link)
            self.proxies.append(p)
            return int(p.address.rsplit(":", 1)[1])

        self.swarm = None
        try:
            self.swarm = petals_ref.Swarm(path, spans, args.threads, proxy if link else None)
            self.client = petals_ref.Client(path, self.swarm, ids, args.new_tokens, args.threads)
        except BaseException:
            self.close()
            raise

    def ask(self, command: str) -> dict:
        return self.client.ask(command)

    def close(self) -> None:
        if getattr(self, "client", None):
            self.client.close()
        if self.swarm:
            self.swarm.stop()
        for p in self.proxies:
            p.close()


def run(args) -> list[str]:
    import procs
    from pollen.model import family_of, load_config

    path = model_path(args.model)
    cfg = load_config(path)
    spans = splits(family_of(cfg).num_blocks(cfg), 2)
    ids = prompt_ids(path, cfg.vocab_size)[0].tolist()
    petals_path = petals_ref.prepare_model(path, f"{args.model}") if args.petals_on else None
    servers = procs.start(path, spans, threads=args.threads)
    results = {}
    try:
        for name, (_, link) in args.profiles.items():
            results[name] = measure_row(args, name, link, path, servers, spans, ids, petals_path)
            print(f"  measured {name} (load {load()})", file=sys.stderr, flush=True)
    finally:
        procs.stop_all(servers)
    return table(args, results)


def measure_row(args, name, link, path, servers, spans, ids, petals_path) -> dict:
    proxies = [Proxy(s.address, *link) for s in servers] if link else []
    peers = [p.address for p in proxies] if link else [s.address for s in servers]
    sides = {}
    load_before = load()
    try:
        sides["pollen"] = Worker(args, "swarm", path, ",".join(peers))
        if petals_path:
            sides["petals"] = PetalsRow(args, petals_path, spans, link, ids)
        return interleave(args, sides) | {"load": f"{load_before} -> {load()}"}
    finally:
        for side in sides.values():
            side.close()
        for p in proxies:
            p.close()


def interleave(args, sides) -> dict:
    out = {k: {"ids": w.ask("gen")["ids"], "gen": [], "fwd 1": [], "fwd 8": []}  # warm-up + identity
           for k, w in sides.items()}
    for _ in range(args.runs):
        for cmd in ("gen", "fwd 1", "fwd 8"):
            for k, w in sides.items():
                out[k][cmd].append(w.ask(cmd)["s"])
    return out


# ---- report ----------------------------------------------------------------------------------------
def rates(args, r: dict) -> tuple[float, float, float]:
    med = statistics.median
    return args.new_tokens / med(r["gen"]), 128 / med(r["fwd 1"]), 8 * 128 / med(r["fwd 8"])


def table(args, results: dict) -> list[str]:
    petals_note = "" if args.petals_on else f" (Petals not run: {args.petals_why})"
    rows = [f"## {args.model}: 2 servers each, {args.new_tokens} new tokens (greedy decode, batch 1) and "
            f"128-token parallel forward, medians of {args.runs}, Pollen and Petals interleaved{petals_note}\n",
            "| link | decode steps/s Pollen | Petals | Pollen/Petals | 1.5-RTT floor | "
            "forward b1 tok/s Pollen | Petals | forward b8 tok/s Pollen | Petals | same tokens | load (1/5/15 min) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    base = next(iter(results.values()))["pollen"]["ids"]
    for name, r in results.items():
        rtt = (PROFILES[name][1] or (0.0, 0.0))[0]
        bound = f"{1e3 / (1.5 * rtt):.1f}" if rtt else "–"
        d, f1, f8 = rates(args, r["pollen"])
        same = "yes" if r["pollen"]["ids"] == base else "no"
        if "petals" in r:
            pd, pf1, pf8 = rates(args, r["petals"])
            ratio, pcols = f"{d / pd:.2f}x", [f"{pd:.2f}", f"{pf1:.0f}", f"{pf8:.0f}"]
            same += " / " + ("yes" if r["petals"]["ids"] == base else "no")
        else:
            ratio, pcols = "–", ["not run"] * 3
        rows.append(f"| {name} | {d:.2f} | {pcols[0]} | {ratio} | {bound} | {f1:.0f} | {pcols[1]} | "
                    f"{f8:.0f} | {pcols[2]} | {same} | {r['load']} |")
    rows += goal_lines(args, results)
    return rows


def goal_lines(args, results) -> list[str]:
    first = next(iter(results))
    out = ["", f"same tokens: the row's Pollen output / Petals' output vs Pollen's in the first row "
               f"({first}), greedy, token for token."]
    for name, goal in GOALS.items():
        r = results.get(name)
        if not r or "petals" not in r:
            out.append(f"goal {name}: >= {goal}x Petals decode: not measured")
            continue
        ratio = rates(args, r["pollen"])[0] / rates(args, r["petals"])[0]
        out.append(f"goal {name}: >= {goal}x Petals decode: {ratio:.2f}x, "
                   f"{'met' if ratio >= goal else 'MISSED'}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=["llama58m", "smollm2"], default="llama58m")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process")
    ap.add_argument("--rows", default=",".join(v[0] for v in PROFILES.values()),
                    help="comma-separated: " + ", ".join(v[0] for v in PROFILES.values()))
    ap.add_argument("--petals", choices=["auto", "off"], default="auto",
                    help="auto: run Petals 2.2 side by side when its venv exists")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    wanted = args.rows.split(",")
    args.profiles = {k: v for k, v in PROFILES.items() if v[0] in wanted}
    args.petals_on = args.petals == "auto" and petals_ref.available()
    args.petals_why = "--petals off" if args.petals == "off" else \
        f"no venv at {petals_ref.VENV}; {petals_ref.SETUP_HINT}"
    started, at = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), commit()
    rows = run(args)
    print(f"{started}, commit {at}, load at start/end of each row in the table\n")
    print("\n".join(rows))
    print(f"\nreproduce: .venv/bin/python benchmarks/network.py --model {args.model} --runs {args.runs} "
          f"--new-tokens {args.new_tokens} --threads {args.threads} --rows {args.rows} --petals {args.petals}")


def commit() -> str:
    """HEAD, plus the swarm code files that differ from it (a shared tree changes under a run)."""
    if (ROOT / ".snapshot").is_file():  # a `git archive` copy of one commit (see results/network.md)
        return (ROOT / ".snapshot").read_text().strip() + " (snapshot)"

    def git(*a):
        return subprocess.run(["git", "-C", str(ROOT), *a], text=True, capture_output=True).stdout
    try:
        dirty = git("status", "--short", "--", "client", "node", "pollen").split("\n")
    except OSError:
        return "?"
    dirty = [line[3:] for line in dirty if line.strip()]
    return git("rev-parse", "--short", "HEAD").strip() + (f" + uncommitted {', '.join(dirty)}" if dirty else "")


if __name__ == "__main__":
    main()
