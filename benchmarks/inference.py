"""Swarm inference benchmark: one-process transformers vs Pollen block servers on loopback.

Every configuration runs in its own worker process (so no process carries another's threads or
memory), and each repetition measures all configurations back to back (interleaved), so machine
noise hits them alike. Numbers are medians. Prints markdown tables and the command.

    .venv/bin/python benchmarks/inference.py            # SmolLM2-135M + 58M tiny Llama
    .venv/bin/python benchmarks/inference.py --quick    # fewer tokens / repetitions
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "python" / "swarm"))

from pollen.threads import quiet_idle_threads  # noqa: E402

quiet_idle_threads()  # every worker (transformers and client alike) spins as `pollen serve` does

import torch  # noqa: E402

PROMPT = "<|im_start|>user\nWrite a short story about a bee.<|im_end|>\n<|im_start|>assistant\n"


def model_path(name: str) -> Path:
    if name == "smollm2":
        from pollen.model import smollm2

        return smollm2.prepare(ROOT / ".cache" / "models" / "smollm2-135m")
    from pollen.model.tiny import BENCH_LLAMA, make_checkpoint

    path = ROOT / ".cache" / "models" / "bench-llama58m"
    if not (path / "model.safetensors").is_file():
        make_checkpoint("llama", path, seed=0, std=0.02, **BENCH_LLAMA)
    return path


def splits(n_blocks: int, n: int) -> list[tuple[int, int]]:
    cuts = [round(i * n_blocks / n) for i in range(n + 1)]
    return list(zip(cuts, cuts[1:]))


def prompt_ids(path, vocab_size: int) -> torch.Tensor:
    """The decode prompt: the chat prompt for a tokenizer-carrying checkpoint, else 16 seeded ids."""
    if vocab_size == 49152 and (Path(path) / "tokenizer.json").is_file():
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(path)(PROMPT, return_tensors="pt").input_ids
    return torch.randint(0, vocab_size, (1, 16), generator=torch.Generator().manual_seed(0))


# ---- worker side: one configuration per process, driven over stdin/stdout ---------------------
def worker(kind: str, path: str, peers: str, compress: bool, new: int) -> None:
    from pollen.model import family_of, load_client, load_config, load_span

    cfg = load_config(path)
    if kind == "hf":
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    elif kind == "local":
        _, _, parts = load_client(path)
        span = load_span(path, 0, family_of(cfg).num_blocks(cfg))
    else:
        from client import AutoDistributedModelForCausalLM

        model = AutoDistributedModelForCausalLM.from_pretrained(path, initial_peers=peers.split(","),
                                                                compress=compress)
    ids = prompt_ids(path, cfg.vocab_size)

    @torch.no_grad()
    def gen():
        if kind != "local":
            return model.generate(ids, max_new_tokens=new, min_new_tokens=new, do_sample=False)
        cache, x, out = span.new_cache(1, ids.shape[1] + new), ids, ids
        for _ in range(new):
            x = parts.head(span(parts.embed(x), cache)[:, -1:]).argmax(-1)
            out = torch.cat([out, x], 1)
        return out

    @torch.no_grad()
    def fwd(batch):
        x = torch.randint(0, cfg.vocab_size, (batch, 128), generator=torch.Generator().manual_seed(batch))
        return model(x).logits if kind != "local" else parts.head(span(parts.embed(x)))

    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        cmd = line.split()
        t0 = time.perf_counter()
        out = gen() if cmd[0] == "gen" else fwd(int(cmd[1]))
        dt = time.perf_counter() - t0
        reply = {"s": dt}
        if cmd[0] == "gen":
            reply["ids"] = out[0].tolist()
        elif len(cmd) > 2:  # return logits summary for the compression error
            torch.save(out, cmd[2])
        print(json.dumps(reply), flush=True)


class Worker:
    def __init__(self, args, kind, path, peers="", compress=False):
        cmd = [sys.executable, __file__, "--worker", kind, "--path", str(path), "--peers", peers,
               "--new-tokens", str(args.new_tokens), "--threads", str(args.threads)]
        if compress:
            cmd.append("--compress")
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, env=env)
        self._read()

    def _read(self):
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("benchmark worker died")
            if line.startswith("{"):
                return json.loads(line)

    def ask(self, command: str) -> dict:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(30)


# ---- parent side ---------------------------------------------------------------------------------
def bench_model(name: str, args) -> list[str]:
    import procs
    from pollen.model import family_of, load_config

    path = model_path(name)
    cfg = load_config(path)
    n_blocks = family_of(cfg).num_blocks(cfg)
    groups = {n: procs.start(path, splits(n_blocks, n), threads=args.threads) for n in args.servers}
    peers = {n: ",".join(s.address for s in g) for n, g in groups.items()}
    n_fwd = 2 if 2 in groups else args.servers[0]
    workers = {"transformers, 1 process": Worker(args, "hf", path),
               "Pollen blocks, 1 process (no network)": Worker(args, "local", path)}
    for n in args.servers:
        workers[f"swarm, {n} server{'s' * (n > 1)}"] = Worker(args, "swarm", path, peers[n])
    workers[f"swarm, {n_fwd} servers, 8-bit wire"] = Worker(args, "swarm", path, peers[n_fwd], True)
    try:
        return measure(name, args, workers, n_fwd)
    finally:
        for w in workers.values():
            w.close()
        for g in groups.values():
            procs.stop_all(g)


def measure(name, args, workers, n_fwd) -> list[str]:
    base = "transformers, 1 process"
    first = {k: w.ask("gen") for k, w in workers.items()}  # warm-up + token identity
    times = {k: [] for k in workers}
    for _ in range(args.runs):
        for k, w in workers.items():
            times[k].append(w.ask("gen")["s"])
    tps = {k: args.new_tokens / statistics.median(v) for k, v in times.items()}
    out = [f"## {name}: decode, batch 1, {args.new_tokens} new tokens\n",
           "| configuration | tokens/s | vs transformers | token-identical |", "|---|---|---|---|"]
    for k, v in tps.items():
        same = "yes" if first[k]["ids"] == first[base]["ids"] else "no"
        out.append(f"| {k} | {v:.1f} | {v / tps[base]:.2f}x | {same} |")
    local_step = 1 / tps["Pollen blocks, 1 process (no network)"]
    hops = [f"{n} servers: {(1 / tps[f'swarm, {n} server' + 's' * (n > 1)] - local_step) / n * 1e3:.2f} ms"
            for n in args.servers]
    out.append("\nper-hop overhead (swarm step - same blocks in one process) / hops: " + ", ".join(hops))
    out.append("(what each hop's overhead is made of: benchmarks/hop_overhead.py)")
    out += forward_table(workers, args, n_fwd)
    return out


def forward_table(workers, args, n_fwd) -> list[str]:
    swarm, packed = workers[f"swarm, {n_fwd} servers"], workers[f"swarm, {n_fwd} servers, 8-bit wire"]
    rows = [f"\nparallel forward, 128 tokens | transformers tok/s | swarm ({n_fwd} servers) tok/s",
            "|---|---|---|"]
    for batch in (1, 8):
        hf_t, sw_t = [], []
        for _ in range(args.runs):
            hf_t.append(workers["transformers, 1 process"].ask(f"fwd {batch}")["s"])
            sw_t.append(swarm.ask(f"fwd {batch}")["s"])
        a, s = batch * 128 / statistics.median(hf_t), batch * 128 / statistics.median(sw_t)
        rows.append(f"| batch {batch} | {a:.0f} | {s:.0f} ({s / a:.2f}x) |")
    tmp = Path(os.environ.get("TMPDIR", "/tmp"))
    swarm.ask(f"fwd 1 {tmp / 'exact.pt'}")
    packed.ask(f"fwd 1 {tmp / 'packed.pt'}")
    a, b = torch.load(tmp / "exact.pt"), torch.load(tmp / "packed.pt")
    rows.append(f"\n8-bit wire: logits relative L2 error {((a - b).norm() / a.norm()).item():.4f}, "
                f"top-1 agreement {100 * (a.argmax(-1) == b.argmax(-1)).float().mean().item():.1f}% "
                f"(128 random tokens)")
    return rows


def hop_overhead(args, steps: int = 400) -> str:
    """Round trip of one decode step through one server holding 1 tiny block, minus its compute."""
    import tempfile

    import procs
    from client import AutoDistributedModelForCausalLM
    from pollen.model import load_span
    from pollen.model.tiny import make_checkpoint
    from pollen.proto import swarm_pb2 as pb

    path = make_checkpoint("llama", Path(tempfile.mkdtemp()) / "one-block", num_hidden_layers=1)
    span = load_span(path, 0, 1)
    cache, x = span.new_cache(1, steps + 8), torch.randn(1, 1, 64)
    with torch.no_grad():
        compute = []
        for _ in range(steps):
            t0 = time.perf_counter()
            span(x, cache)
            compute.append(time.perf_counter() - t0)
    servers = procs.start(path, [(0, 1)], threads=args.threads)
    try:
        model = AutoDistributedModelForCausalLM.from_pretrained(path, initial_peers=[servers[0].address])
        with model.inference_session(max_length=steps + 8) as sess:
            rtt = []
            for _ in range(steps):
                t0 = time.perf_counter()
                sess.step(x)
                rtt.append(time.perf_counter() - t0)
        conn = model.swarm.connection(servers[0].address)
        unary = []
        for _ in range(steps):
            t0 = time.perf_counter()
            conn.call("Info", pb.InfoRequest(), 5)
            unary.append(time.perf_counter() - t0)
        model.close()
    finally:
        procs.stop_all(servers)
    m = statistics.median
    return (f"## gRPC hop overhead (1 tiny block, hidden 64, {steps} steps)\n\n"
            f"| measure | median ms |\n|---|---|\n"
            f"| inference-stream step round trip (client encode/verify + server decode/hash/sign) | {m(rtt) * 1e3:.3f} |\n"
            f"| same block computed in-process | {m(compute) * 1e3:.3f} |\n"
            f"| **per-hop overhead** (difference) | **{(m(rtt) - m(compute)) * 1e3:.3f}** |\n"
            f"| unary Info RPC round trip | {m(unary) * 1e3:.3f} |\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="smollm2,llama58m")
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--servers", default="1,2,3")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads in every process")
    ap.add_argument("--quick", action="store_true", help="16 tokens, 3 runs")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    ap.add_argument("--peers", default="", help=argparse.SUPPRESS)
    ap.add_argument("--compress", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.worker:
        return worker(args.worker, args.path, args.peers, args.compress, args.new_tokens)
    if args.quick:
        args.new_tokens, args.runs = 16, 3
    args.servers = [int(s) for s in args.servers.split(",")]
    cmd = " ".join(["python benchmarks/inference.py"] + sys.argv[1:])
    print(f"# Pollen swarm benchmark\n\n`{cmd}` — {platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, {args.threads} torch thread(s) per process, fp32, greedy; "
          f"median of {args.runs} interleaved runs, each configuration in its own process\n")
    print(hop_overhead(args), flush=True)
    for name in args.models.split(","):
        print("\n".join(bench_model(name, args)) + "\n", flush=True)


if __name__ == "__main__":
    main()
