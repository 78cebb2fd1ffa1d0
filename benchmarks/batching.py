"""Batched sessions benchmark: N concurrent inference sessions on one block server process.

Two `pollen serve` processes host the whole model on loopback: one batching concurrent decode
steps (--max-batch-sessions 8, the default) and one not (--max-batch-sessions 1). For N in 1, 2,
4, 8, N client threads each open a session (prompts of different lengths: ragged caches), then
send `--tokens` decode steps back to back. What is measured is the server: the clients send
hidden states (random, fixed seed) and do no embedding / LM-head work, so the 2-core box's CPU
goes to the server. Each repetition measures every (server, N) back to back; numbers are medians.

  aggregate tok/s   = N x tokens / wall time from the first step to the last session's end
  per-session tok/s = tokens / that session's own decode time (median over sessions)
  ratio             = aggregate tok/s / the same server's 1-session aggregate tok/s

    .venv/bin/python benchmarks/batching.py                 # SmolLM2-135M, 32 tokens, 3 reps, 1 thread
    .venv/bin/python benchmarks/batching.py --model bench --quick
    .venv/bin/python benchmarks/batching.py --forward --seq 16   # parallel Forward requests instead
    .venv/bin/python benchmarks/batching.py --backward --seq 16  # parallel Backward requests

With --forward (--backward) each client thread sends `--tokens` Forward (Backward) requests
(batch 1, `--seq` tokens, no KV cache) back to back; tok/s counts seq tokens per request; the
batching server stacks queued requests of one kind into one pass (node/request_batching.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests" / "python" / "swarm"))

import grpc  # noqa: E402
import torch  # noqa: E402

import procs  # noqa: E402
from inference import model_path  # noqa: E402
from pollen import wire  # noqa: E402
from pollen.model import load_config  # noqa: E402
from pollen.proto import swarm_pb2 as pb  # noqa: E402
from pollen.proto import swarm_pb2_grpc as pb_grpc  # noqa: E402

COUNTS = (1, 2, 4, 8)


def session(stub, n_blocks: int, hidden: int, prompt: int, tokens: int, seed: int, start: threading.Barrier,
            out: dict, key: int) -> None:
    """Prefill `prompt` positions, wait for the others, then `tokens` decode steps; records
    (t_first_step, t_end)."""
    g = torch.Generator().manual_seed(seed)
    steps = [wire.encode(torch.randn(1, 1, hidden, generator=g)) for _ in range(tokens)]
    stream = procs.Stream(stub, timeout=600)
    o = pb.SessionOpen(session_id=os.urandom(32), start=0, end=n_blocks, max_length=prompt + tokens, batch_size=1)
    stream.send(pb.InferenceRequest(open=o, hidden=wire.encode(torch.randn(1, prompt, hidden, generator=g))))
    start.wait()
    t0 = time.perf_counter()
    for i, msg in enumerate(steps):
        stream.send(pb.InferenceRequest(hidden=msg, step=i + 1))
    out[key] = (t0, time.perf_counter())
    stream.q.put(None)


def forwards(stub, n_blocks: int, hidden: int, seq: int, count: int, seed: int, start: threading.Barrier,
             out: dict, key: int, backward: bool = False) -> None:
    """`count` Forward (or Backward) requests of (1, seq) tokens back to back; records (t_first, t_end)."""
    g = torch.Generator().manual_seed(seed)
    msgs = [wire.encode(torch.randn(1, seq, hidden, generator=g)) for _ in range(count)]
    grad = wire.encode(torch.randn(1, seq, hidden, generator=g))
    start.wait()
    t0 = time.perf_counter()
    for msg in msgs:
        if backward:
            stub.Backward(pb.BackwardRequest(session_id=os.urandom(32), start=0, end=n_blocks, hidden=msg,
                                             grad_output=grad), timeout=600)
        else:
            stub.Forward(pb.ForwardRequest(session_id=os.urandom(32), start=0, end=n_blocks, hidden=msg), timeout=600)
    out[key] = (t0, time.perf_counter())


def measure(address: str, n: int, n_blocks: int, hidden: int, tokens: int, rep: int,
            seq: int = 0, backward: bool = False) -> tuple[float, float]:
    """(aggregate tok/s, median per-client tok/s) of n concurrent sessions (seq = 0) or of n
    clients sending Forwards (Backwards) of seq tokens (tokens = requests per client)."""
    out: dict = {}
    start = threading.Barrier(n)
    with grpc.insecure_channel(address, [("grpc.max_receive_message_length", 256 << 20)]) as channel:
        stub = pb_grpc.BlockServerStub(channel)
        threads = [threading.Thread(target=forwards, args=(stub, n_blocks, hidden, seq, tokens, 1000 * rep + i,
                                                           start, out, i, backward)) if seq else
                   threading.Thread(target=session, args=(stub, n_blocks, hidden, 8 + 5 * i, tokens,
                                                          1000 * rep + i, start, out, i)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    if len(out) != n:
        raise RuntimeError(f"{n - len(out)} of {n} sessions failed (see the server log)")
    wall = max(e for _, e in out.values()) - min(s for s, _ in out.values())
    per = max(seq, 1) * tokens
    return n * per / wall, statistics.median(per / (e - s) for s, e in out.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2", choices=["smollm2", "bench"],
                    help="smollm2: SmolLM2-135M (30 blocks); bench: the 58M tiny Llama (8 blocks)")
    ap.add_argument("--tokens", type=int, default=32, help="decode steps per session")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="the server's torch threads")
    ap.add_argument("--quick", action="store_true", help="16 tokens, 2 repetitions")
    ap.add_argument("--forward", action="store_true", help="parallel Forward requests instead of sessions")
    ap.add_argument("--backward", action="store_true", help="parallel Backward requests instead of sessions")
    ap.add_argument("--seq", type=int, default=16, help="with --forward / --backward: tokens per request")
    args = ap.parse_args()
    rpc = "Backward" if args.backward else "Forward" if args.forward else "Inference"
    if args.quick:
        args.tokens, args.reps = 16, 2
    path = model_path("smollm2" if args.model == "smollm2" else "bench")
    cfg = load_config(path)
    n_blocks, hidden = int(cfg.num_hidden_layers), int(cfg.hidden_size)
    log_dir = ROOT / ".cache" / "bench-batching"
    log_dir.mkdir(parents=True, exist_ok=True)
    trace = log_dir / f"trace-{os.getpid()}.jsonl"  # the batching server's record of batch sizes
    os.environ["POLLEN_RPC_TRACE"] = str(trace)
    on = procs.spawn(path, (0, n_blocks), "--max-batch-sessions", "8", log_dir=log_dir, threads=args.threads)
    del os.environ["POLLEN_RPC_TRACE"]
    servers = {"on": on,
               "off": procs.spawn(path, (0, n_blocks), "--max-batch-sessions", "1", log_dir=log_dir,
                                  threads=args.threads)}
    results: dict = {(k, n): [] for k in servers for n in COUNTS}
    seq = args.seq if rpc != "Inference" else 0
    batches: dict = {n: [] for n in COUNTS}  # batch sizes of the batching server's decode steps
    try:
        procs.wait_ready(list(servers.values()), timeout=300)
        for k, s in servers.items():  # warm-up
            measure(s.address, 2, n_blocks, hidden, 4, rep=99, seq=seq, backward=args.backward)
        for rep in range(args.reps):
            for n in COUNTS:
                for k, s in servers.items():
                    seen = len(_batch_sizes(trace, rpc))
                    results[(k, n)].append(measure(s.address, n, n_blocks, hidden, args.tokens, rep, seq,
                                                   args.backward))
                    if k == "on":
                        batches[n] += _batch_sizes(trace, rpc)[seen:]
                    print(f"rep {rep} batching {k} n={n}: {results[(k, n)][-1][0]:.1f} tok/s", file=sys.stderr)
    finally:
        procs.stop_all(list(servers.values()))
    report(results, batches, args, n_blocks, rpc)


def _batch_sizes(trace: Path, rpc: str = "Inference") -> list[int]:
    """Batch size of every decode step (T = 1), or of every Forward / Backward, the batching server recorded."""
    if not trace.exists():
        return []
    lines = [json.loads(x) for x in trace.read_text().splitlines() if x.strip()]
    return [x.get("batch", 1) for x in lines if x["rpc"] == rpc and (rpc != "Inference" or x["shape"][1] == 1)]


def report(results: dict, batches: dict, args, n_blocks: int, rpc: str) -> None:
    med = {key: (statistics.median(a for a, _ in v), statistics.median(p for _, p in v)) for key, v in results.items()}
    requests = rpc != "Inference"
    what = (f"{args.tokens} {rpc} requests of {args.seq} tokens per client" if requests else
            f"{args.tokens} decode tokens per session")
    print(f"\nModel: {args.model} ({n_blocks} blocks on one server), {what}, "
          f"{args.reps} repetitions (medians), server torch threads {args.threads}; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}\n")
    print(f"| {'clients' if requests else 'sessions'} | batching | aggregate tok/s | per-client tok/s | "
          f"aggregate / 1 | mean batch |")
    print("|---:|---|---:|---:|---:|---:|")
    for n in COUNTS:
        for k in ("on", "off"):
            agg, per = med[(k, n)]
            mean = f"{statistics.mean(batches[n]):.2f}" if k == "on" and batches[n] else "1"
            print(f"| {n} | {k} | {agg:.1f} | {per:.1f} | {agg / med[(k, 1)][0]:.2f}x | {mean} |")
    ratio = med[("on", 8)][0] / med[("on", 1)][0]
    what = "clients" if requests else "sessions"
    goal = "" if requests else f" (goal >= 4x: {'met' if ratio >= 4 else 'MISSED'})"  # the goal is for sessions
    print(f"\n8 {what} / 1 with batching: {ratio:.2f}x{goal}; "
          f"batching on / off at 8 {what}: {med[('on', 8)][0] / med[('off', 8)][0]:.2f}x")
    print(f"\nCommand: .venv/bin/python benchmarks/batching.py --model {args.model} --tokens {args.tokens} "
          f"--reps {args.reps} --threads {args.threads}" + (f" --{rpc.lower()} --seq {args.seq}" if requests else ""))


if __name__ == "__main__":
    main()
