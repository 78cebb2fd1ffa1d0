"""Per-hop overhead of a decode step (batch 1, one token) through one real `pollen serve` on loopback.

overhead = (client-timed InferenceSession.step through the server) - (the same block's pure
compute for that step, timed in this process with the same torch threads). Then a breakdown:
each stage a step passes through is timed on its own here, calling the very functions the client
and server call (the server's own checks / finish code on a BlockServicer built in-process),
and the gRPC + thread-wakeup share is what is left of the end-to-end overhead. Measurements are
medians; the remote step, the local compute and the unary Info RPC are interleaved in rounds.

    .venv/bin/python benchmarks/hop_overhead.py                   # hidden 512, 1 block, 4 x 50 steps
    .venv/bin/python benchmarks/hop_overhead.py --rounds 2 --steps 100 --threads 2
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "python" / "swarm"))

import torch  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "hop_overhead.md"


def one_block_model(hidden: int) -> Path:
    """A 1-block Llama checkpoint with the benchmark Llama's widths (hidden 512 by default)."""
    from pollen.model.tiny import BENCH_LLAMA, make_checkpoint

    shape = {**BENCH_LLAMA, "num_hidden_layers": 1}
    if hidden != shape["hidden_size"]:
        shape.update(hidden_size=hidden, intermediate_size=3 * hidden)
    return make_checkpoint("llama", Path(tempfile.mkdtemp()) / "one-block", seed=0, std=0.02, **shape)


def median_us(fn, n: int) -> float:
    """Median microseconds of fn() over n calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - t0)
    return statistics.median(times) / 1e3


# ---- end to end: steps through the server vs the same compute here ----------------------------
def end_to_end(path: Path, address: str, hidden: int, rounds: int, steps: int) -> dict[str, list[float]]:
    """Per-step microseconds: remote step, local compute, unary Info RPC (interleaved rounds)."""
    from client import AutoDistributedModelForCausalLM
    from pollen.model import load_span
    from pollen.proto import swarm_pb2 as pb

    span = load_span(path, 0, 1)
    model = AutoDistributedModelForCausalLM.from_pretrained(path, initial_peers=[address])
    conn = model.swarm.connection(address)
    x = torch.randn(1, 1, hidden, generator=torch.Generator().manual_seed(0))  # (B=1, T=1, C)
    out = {"step": [], "compute": [], "info": []}
    try:
        for _ in range(rounds):
            with torch.no_grad(), model.inference_session(max_length=steps + 1) as sess:
                out["step"] += timed(lambda: sess.step(x), steps)
            cache = span.new_cache(1, steps + 1)
            with torch.no_grad():
                out["compute"] += timed(lambda: span(x, cache), steps)
            out["info"] += timed(lambda: conn.call("Info", pb.InfoRequest(), 5), steps)
    finally:
        model.close()
    return out


def timed(fn, n: int) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        fn()
        times.append((time.perf_counter_ns() - t0) / 1e3)
    return times


# ---- breakdown: each stage alone, through the real client / server functions -------------------
class Stages:
    """An in-process BlockServicer with one open session, and a client-side verifier."""

    def __init__(self, path: Path, hidden: int, steps: int):
        from client.verify import ReceiptVerifier
        from node.config import ServerConfig
        from node.server import BlockServicer
        from node.signing import ReceiptSigner
        from pollen.model import load_span
        from pollen.proto import swarm_pb2 as pb
        from pollen.receipts import ReceiptDomain

        cfg = ServerConfig(model_path=str(path), start=0, end=1).validate()
        domain = ReceiptDomain(cfg.chain_id, cfg.court)
        self.srv = BlockServicer(cfg, load_span(path, 0, 1), ReceiptSigner(None, domain), 1.0)
        self.verifier = ReceiptVerifier(domain)
        self.x = torch.randn(1, 1, hidden, generator=torch.Generator().manual_seed(0))  # (1, 1, C)
        self.steps = steps
        self.open = pb.SessionOpen(session_id=os.urandom(32), start=0, end=1, max_length=64, batch_size=1)

    def new_session(self):
        from pollen.proto import swarm_pb2 as pb

        return self.srv._open(pb.InferenceRequest(open=self.open), None)

    def request(self, step: int):
        """Client side: encode x and build the step's request message."""
        from pollen import wire
        from pollen.proto import swarm_pb2 as pb

        return pb.InferenceRequest(hidden=wire.encode(self.x), step=step)

    def response(self):
        """One real server response (decode, compute, finish) for the breakdown's client side."""
        from node import batching

        session = self.new_session()
        request = self.request(0)
        x, prompts = batching.prepare(self.srv, session, request)
        trace: list[torch.Tensor] = []
        y = self.srv._no_grad(x, session.cache, session.first, session.last, trace, prompts, session.lora)
        return session, request, batching.finish(self.srv, session, request, y, trace, prompts)

    def verify(self, session, request, response) -> None:
        """Client side of InferenceSession._accept for the response (same calls, same checks)."""
        from client.verify import Expected, check_output, decode_sketches
        from pollen import wire
        from pollen.receipts import KIND_INFERENCE, ZERO_HASH, chain_input_hash

        y = wire.decode(response.hidden, max_elements=self.x.numel())
        sketches = decode_sketches("bench", response.sketches, 1, tuple(self.x.shape))
        expected = Expected(self.srv.signer.address, self.srv.signer.address, session.session_id, 0, 0, 1,
                            chain_input_hash(ZERO_HASH, wire.message_hash(request.hidden)), KIND_INFERENCE)
        record = self.verifier.check("bench", response.receipt, expected, wire.message_hash(response.hidden),
                                     sketches)
        check_output("bench", record, y, sketches, exact=True)

    def measure(self, n: int) -> dict[str, float]:
        from pollen.proto import swarm_pb2 as pb
        from pollen.receipts import Receipt

        session, request, response = self.response()
        wire_req, wire_resp = request.SerializeToString(), response.SerializeToString()
        trace: list[torch.Tensor] = []
        y = self.srv._no_grad(self.x, self.new_session().cache, 0, 1, trace)  # (1, 1, C)
        r = self.srv._receipt(0, session.session_id, 0, 1, 0, b"\1" * 32, b"\2" * 32, b"\3" * 32)
        receipt = Receipt(r.server, 0, 0, 1, 0, 0, r.session_id, 0, r.input_hash, r.output_hash, r.blocks_root,
                          r.issued_at)
        fresh = self._finish_fresh(y, trace, request)
        return {
            "client: encode x + build request": median_us(lambda: self.request(0), n),
            "client: serialise request": median_us(request.SerializeToString, n),
            "server: parse request": median_us(lambda: pb.InferenceRequest.FromString(wire_req), n),
            "server: decode + check x (prepare)": median_us(lambda: self._prepare_fresh(request), n),
            "server: finish (encode y, sketches, hashes, receipt)": median_us(fresh, n),
            "  of which: sign receipt (EIP-712 digest + secp256k1)": median_us(
                lambda: self.srv.signer.sign(receipt), n),
            "server: serialise response": median_us(response.SerializeToString, n),
            "client: parse response": median_us(lambda: pb.InferenceResponse.FromString(wire_resp), n),
            "client: decode y + verify receipt + check output": median_us(
                lambda: self.verify(session, request, response), n),
            "server: hand-off to the compute loop (no-op task)": handoff_us(n),
        }

    def _prepare_fresh(self, request):
        from node import batching

        session = self._session_at(request.step)
        return batching.prepare(self.srv, session, request)

    def _session_at(self, step: int):
        if not hasattr(self, "_bench_session"):
            self._bench_session = self.new_session()
        self._bench_session.step = step
        return self._bench_session

    def _finish_fresh(self, y, trace, request):
        from node import batching

        def run():
            session = self._session_at(0)
            batching.finish(self.srv, session, request, y, list(trace), None)
        return run


def handoff_us(n: int) -> float:
    """Round trip of a no-op task through node.runtime.ComputeLoop (a loop thread, like `serve`)."""
    import threading

    from node.runtime import ComputeLoop

    loop, stop = ComputeLoop(), threading.Event()
    thread = threading.Thread(target=loop.run, args=(stop, lambda: None), daemon=True)
    thread.start()
    try:
        return median_us(lambda: loop.submit(lambda: None), n)
    finally:
        stop.set()
        thread.join(5)


# ---- report --------------------------------------------------------------------------------------
def report(args, e2e: dict[str, list[float]], stages: dict[str, float]) -> str:
    m = {k: statistics.median(v) for k, v in e2e.items()}
    overhead = m["step"] - m["compute"]
    counted = sum(v for k, v in stages.items() if not k.startswith("  "))
    cmd = " ".join(["python benchmarks/hop_overhead.py"] + sys.argv[1:])
    lines = [f"# Per-hop overhead, decode step (batch 1, 1 token)\n",
             f"`{cmd}` — {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
             f"{args.threads} torch thread(s) in server and client, 1 Llama block (hidden {args.hidden}), fp32; "
             f"medians of {args.rounds} x {args.steps} interleaved steps{args.label}\n",
             "| measure | median us |", "|---|---|",
             f"| step through the server (client-timed InferenceSession.step) | {m['step']:.0f} |",
             f"| same block's pure compute in-process | {m['compute']:.0f} |",
             f"| **per-hop overhead** (difference) | **{overhead:.0f}** |",
             f"| unary Info RPC round trip (gRPC alone, for scale) | {m['info']:.0f} |",
             "", "Breakdown (each stage alone, same functions, median of "
             f"{args.reps} calls):", "", "| stage | median us |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in stages.items()]
    lines += [f"| sum of stages above | {counted:.0f} |",
              f"| rest: gRPC stream round trip, thread wake-ups, Python glue (overhead - sum) | "
              f"{overhead - counted:.0f} |"]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=50, help="decode steps per round (one session each)")
    ap.add_argument("--reps", type=int, default=2000, help="calls per breakdown stage")
    ap.add_argument("--threads", type=int, default=1, help="torch threads in the server and this process")
    ap.add_argument("--server-args", default="", help="extra `pollen serve` options, e.g. '--max-batch-sessions 1'")
    ap.add_argument("--label", default="", help="text appended to the setup line (e.g. 'before')")
    ap.add_argument("--out", default=str(OUT), help="markdown file written ('' = none)")
    args = ap.parse_args()
    if args.label:
        args.label = f"; {args.label}"
    torch.set_num_threads(args.threads)
    import procs

    path = one_block_model(args.hidden)
    servers = procs.start(path, [(0, 1)], *args.server_args.split(), threads=args.threads)
    try:
        e2e = end_to_end(path, servers[0].address, args.hidden, args.rounds, args.steps)
    finally:
        procs.stop_all(servers)
    text = report(args, e2e, Stages(path, args.hidden, args.steps).measure(args.reps))
    print(text, flush=True)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
