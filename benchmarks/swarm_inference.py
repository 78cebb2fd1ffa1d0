"""Swarm inference benchmark: one-process transformers vs Pollen block servers on loopback.

Prints markdown tables and the command that produced them. Every configuration is measured in
each repetition, interleaved (so machine noise hits all of them alike); numbers are medians.

    .venv/bin/python benchmarks/swarm_inference.py            # SmolLM2-135M + 58M tiny Llama
    .venv/bin/python benchmarks/swarm_inference.py --quick    # fewer tokens / repetitions
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "python" / "swarm"))

import torch  # noqa: E402

import procs  # noqa: E402  (server process helpers shared with the tests)
from client import AutoDistributedModelForCausalLM  # noqa: E402
from pollen.model import load_client, load_span  # noqa: E402
from pollen.model.tiny import BENCH_LLAMA, make_checkpoint  # noqa: E402

PROMPT = "<|im_start|>user\nWrite a short story about a bee.<|im_end|>\n<|im_start|>assistant\n"


def model_path(name: str) -> Path:
    if name == "smollm2":
        from pollen.model import smollm2

        return smollm2.prepare(ROOT / ".cache" / "models" / "smollm2-135m")
    path = ROOT / ".cache" / "models" / "bench-llama58m"
    if not (path / "model.safetensors").is_file():
        make_checkpoint("llama", path, seed=0, std=0.02, **BENCH_LLAMA)
    return path


def splits(n_blocks: int, n: int) -> list[tuple[int, int]]:
    cuts = [round(i * n_blocks / n) for i in range(n + 1)]
    return list(zip(cuts, cuts[1:]))


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


class LocalBlocks:
    """Pollen's own block code in one process (no network): isolates transport overhead."""

    def __init__(self, path):
        _, _, self.parts = load_client(path)
        self.span = load_span(path, 0, self.parts_blocks(path))

    @staticmethod
    def parts_blocks(path):
        from pollen.model import family_of, load_config

        cfg = load_config(path)
        return family_of(cfg).num_blocks(cfg)

    @torch.no_grad()
    def generate(self, ids, new):
        cache = self.span.new_cache(ids.shape[0], ids.shape[1] + new)
        x = ids
        for _ in range(new):
            h = self.span(self.parts.embed(x), cache)
            x = self.parts.head(h[:, -1:]).argmax(-1)


def bench_model(name: str, args) -> tuple[list[str], dict]:
    from transformers import AutoModelForCausalLM

    path = model_path(name)
    hf = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()
    n_blocks = hf.config.num_hidden_layers
    local = LocalBlocks(path)
    groups = {n: procs.start(path, splits(n_blocks, n), threads=args.threads) for n in args.servers}
    clients = {n: AutoDistributedModelForCausalLM.from_pretrained(path, initial_peers=[s.address for s in g])
               for n, g in groups.items()}
    clients["2+8bit"] = AutoDistributedModelForCausalLM.from_pretrained(
        path, initial_peers=[s.address for s in groups[2]], compress=True) if 2 in groups else None
    if name == "smollm2":
        ids = clients[args.servers[0]].tokenizer(PROMPT, return_tensors="pt").input_ids
    else:
        ids = torch.randint(0, hf.config.vocab_size, (1, 16), generator=torch.Generator().manual_seed(0))
    new = args.new_tokens
    gen_kw = dict(max_new_tokens=new, min_new_tokens=new, do_sample=False)
    ref = hf.generate(ids, **gen_kw)
    same = {n: clients[n].generate(ids, **gen_kw).tolist() == ref.tolist() for n in args.servers}
    configs = {"transformers (1 process)": lambda: hf.generate(ids, **gen_kw),
               "pollen blocks, 1 process (no network)": lambda: local.generate(ids, new)}
    for n in args.servers:
        configs[f"swarm, {n} server{'s' if n > 1 else ''}"] = (lambda c: lambda: c.generate(ids, **gen_kw))(clients[n])
    if clients["2+8bit"] is not None:
        configs["swarm, 2 servers, 8-bit wire"] = lambda: clients["2+8bit"].generate(ids, **gen_kw)
    times = {k: [] for k in configs}
    for fn in configs.values():  # warm-up
        fn()
    for _ in range(args.runs):
        for k, fn in configs.items():
            times[k].append(timed(fn))
    tps = {k: new / statistics.median(v) for k, v in times.items()}
    base = tps["transformers (1 process)"]
    rows = [f"| {k} | {v:.1f} | {v / base:.2f}x |" for k, v in tps.items()]
    extra = {"identical": same, "tps": tps, "local_step": statistics.median(times["pollen blocks, 1 process (no network)"]) / new}
    for n in args.servers:
        step = statistics.median(times[f"swarm, {n} server{'s' if n > 1 else ''}"]) / new
        extra[f"hop_ms_{n}"] = (step - extra["local_step"]) / n * 1e3
    extra.update(parallel_forward(hf, clients[2 if 2 in clients else args.servers[0]], hf.config.vocab_size, args))
    if clients["2+8bit"] is not None:
        with torch.no_grad():
            a, b = clients[2](ids).logits, clients["2+8bit"](ids).logits
        extra["8bit_rel_err"] = ((a - b).norm() / a.norm()).item()
        extra["8bit_top1"] = (a.argmax(-1) == b.argmax(-1)).float().mean().item()
    for c in clients.values():
        if c is not None:
            c.close()
    for g in groups.values():
        procs.stop_all(g)
    return rows, extra


def parallel_forward(hf, client, vocab, args) -> dict:
    out = {}
    for batch in (1, 8):
        ids = torch.randint(0, vocab, (batch, 128), generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            hf(ids), client(ids)  # warm-up
            t_hf = statistics.median(timed(lambda: hf(ids)) for _ in range(args.runs))
            t_sw = statistics.median(timed(lambda: client(ids)) for _ in range(args.runs))
        out[f"fwd_b{batch}"] = (batch * 128 / t_hf, batch * 128 / t_sw)
    return out


def receipt_cost(hidden: int, n: int = 300) -> float:
    """Seconds per hop per decode step for receipts: server hash+sign, client hash+verify."""
    from client.verify import Expected, ReceiptVerifier
    from node.signing import ReceiptSigner
    from pollen import wire
    from pollen.receipts import ZERO_HASH, Receipt, ReceiptDomain, chain_input_hash, hash_tensor

    domain = ReceiptDomain(31337, "0x000000000000000000000000000000000000c0de")
    signer, verifier = ReceiptSigner(None, domain), ReceiptVerifier(domain)
    x, y = torch.randn(1, 1, hidden), torch.randn(1, 1, hidden)
    sid = os.urandom(32)

    def one():
        ih = chain_input_hash(ZERO_HASH, hash_tensor(x))
        r = Receipt(signer.address, 0, 0, 1, sid, 0, ih, hash_tensor(y), int(time.time()))
        sig = signer.sign(r)
        msg = wire.pb.Receipt(server=r.server, version_id="0", first_block=0, last_block=1, session_id=sid,
                              step=0, input_hash=ih, output_hash=r.output_hash, issued_at=r.issued_at,
                              signature=sig)
        ih2 = chain_input_hash(ZERO_HASH, hash_tensor(x))
        verifier.check("bench", msg, Expected(signer.address, signer.address, sid, 0, 0, 1, ih2), y)

    one()
    return statistics.median(timed(one) for _ in range(n))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="smollm2,llama58m")
    ap.add_argument("--new-tokens", type=int, default=48)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--servers", default="1,2,3")
    ap.add_argument("--quick", action="store_true", help="16 tokens, 3 runs")
    ap.add_argument("--threads", type=int, default=1, help="torch threads, same for every process")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.quick:
        args.new_tokens, args.runs = 16, 3
    args.servers = [int(s) for s in args.servers.split(",")]
    cmd = "python benchmarks/swarm_inference.py " + " ".join(sys.argv[1:])
    print(f"# Pollen swarm benchmark\n\n`{cmd.strip()}` on {platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; fp32, batch 1, greedy, "
          f"{args.new_tokens} new tokens, median of {args.runs} interleaved runs\n")
    for name in args.models.split(","):
        rows, extra = bench_model(name, args)
        print(f"## {name}: decode tokens/s\n\n| configuration | tokens/s | vs transformers |\n|---|---|---|")
        print("\n".join(rows))
        print(f"\ntoken-identical to transformers: {extra['identical']}")
        hops = ", ".join(f"{n} servers: {extra[f'hop_ms_{n}']:.2f} ms" for n in args.servers)
        print(f"per-hop overhead vs Pollen blocks in one process (step time difference / hops): {hops}")
        hidden = 576 if name == "smollm2" else BENCH_LLAMA["hidden_size"]
        rc = receipt_cost(hidden)
        step2 = 1 / extra["tps"][f"swarm, 2 servers"] if 2 in args.servers else extra["local_step"]
        print(f"receipts (server hash+sign + client hash+verify) per hop per step: {rc * 1e3:.3f} ms = "
              f"{200 * rc / step2:.1f}% of a 2-server decode step")
        if "8bit_rel_err" in extra:
            print(f"8-bit wire: logits relative L2 error {extra['8bit_rel_err']:.4f}, "
                  f"top-1 agreement {100 * extra['8bit_top1']:.1f}%")
        print("\nparallel forward, 128 tokens | transformers tok/s | swarm (2 servers) tok/s\n|---|---|---|")
        for b in (1, 8):
            a, s = extra[f"fwd_b{b}"]
            print(f"| batch {b} | {a:.0f} | {s:.0f} ({s / a:.2f}x) |")
        print(flush=True)


if __name__ == "__main__":
    main()
