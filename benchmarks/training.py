"""Training throughput: prompt tuning (forward + backward) through 2 servers vs one local process.

Same model, same batch, same trainable prompts. Local: the client parts and all blocks in this
process, torch autograd. Swarm: `AutoDistributedModelForCausalLM(tuning_mode="ptune")` through
2 `pollen serve` processes on loopback (blocks split in half, 1 torch thread each); the servers'
Backward recomputes its span's forward. Each repetition times one step of each, back to back
(interleaved), so machine noise hits both alike. Tokens/s = batch x sequence / median step time.

    .venv/bin/python benchmarks/training.py                 # SmolLM2-135M, batch 8 x 32 tokens
    .venv/bin/python benchmarks/training.py --quick         # fewer repetitions
    .venv/bin/python benchmarks/training.py --out benchmarks/results/training.md
    .venv/bin/python benchmarks/training.py --lora          # client LoRA (r=8, q/v) vs no LoRA, bytes/request
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "python" / "swarm"))

import torch  # noqa: E402


@dataclass(frozen=True)
class Setup:
    model: Path
    batch: int = 8
    seq: int = 32
    pre_seq_len: int = 8
    reps: int = 7
    warmup: int = 1
    threads: int = 1  # this process (local run, and the swarm client's embeddings / head)


class LocalStep:
    """One process: prompts + embeddings -> all blocks -> head -> loss -> backward."""

    def __init__(self, s: Setup, prompts: torch.Tensor):
        from pollen.model import family_of, load_client, load_config, load_span

        cfg = load_config(s.model)
        _, _, self.parts = load_client(s.model)
        self.parts.requires_grad_(False)
        self.span = load_span(s.model, 0, family_of(cfg).num_blocks(cfg))
        self.prompts = torch.nn.Parameter(prompts.clone())

    def __call__(self, ids: torch.Tensor) -> float:
        from client.tuning import causal_lm_loss

        self.prompts.grad = None
        h = torch.cat([self.prompts[None].expand(ids.shape[0], -1, -1), self.parts.embed(ids)], 1)
        logits = self.parts.head(self.span(h)[:, self.prompts.shape[0]:])
        loss = causal_lm_loss(logits, ids)
        loss.backward()
        return loss.item()


class LocalLoraStep(LocalStep):
    """One process: embeddings -> all blocks with the same LoRA leaves -> head -> loss -> backward."""

    def __init__(self, s: Setup, lora):
        super().__init__(s, torch.zeros(0))
        self.lora = lora.map(lambda t: torch.nn.Parameter(t.clone()))

    def __call__(self, ids: torch.Tensor) -> float:
        from client.tuning import causal_lm_loss

        for t in self.lora.tensors():
            t.grad = None
        loss = causal_lm_loss(self.parts.head(self.span(self.parts.embed(ids), lora=self.lora)), ids)
        loss.backward()
        return loss.item()


class EmbedsStep:
    """Swarm, nothing tuned: the gradient of the loss w.r.t. the input embeddings (same tokens,
    same remote work as the LoRA step minus the LoRA)."""

    def __init__(self, model):
        self.model = model
        model.parts.requires_grad_(False)

    def __call__(self, ids: torch.Tensor) -> float:
        h = self.model.parts.embed(ids).detach().requires_grad_(True)
        loss = self.model(inputs_embeds=h, labels=ids).loss
        loss.backward()
        return loss.item()


class SwarmStep:
    def __init__(self, model):
        self.model = model

    def __call__(self, ids: torch.Tensor) -> float:
        for p in self.model.trainable_parameters():
            p.grad = None
        loss = self.model(ids, labels=ids).loss
        loss.backward()
        return loss.item()


def timed(step, ids) -> tuple[float, float]:
    t0 = time.perf_counter()
    loss = step(ids)
    return time.perf_counter() - t0, loss


def measure(s: Setup, peers: list[str]) -> dict[str, list[float]]:
    from client import AutoDistributedModelForCausalLM

    torch.set_num_threads(s.threads)
    model = AutoDistributedModelForCausalLM.from_pretrained(s.model, initial_peers=peers, tuning_mode="ptune",
                                                            pre_seq_len=s.pre_seq_len)
    try:
        steps = {"local (1 process)": LocalStep(s, model.prompts.weight.detach()), "swarm (2 servers)": SwarmStep(model)}
        ids = torch.randint(0, int(model.config.vocab_size), (s.batch, s.seq), generator=torch.Generator().manual_seed(0))
        times = {k: [] for k in steps}
        losses = {}
        for rep in range(s.warmup + s.reps):
            for name, step in steps.items():
                dt, losses[name] = timed(step, ids)
                if rep >= s.warmup:
                    times[name].append(dt)
        a, b = losses.values()
        assert abs(a - b) < 1e-3 * max(1.0, abs(a)), f"local loss {a} != swarm loss {b}"
        return times
    finally:
        model.close()


def measure_lora(s: Setup, peers: list[str]) -> tuple[dict[str, list[float]], str]:
    """Interleaved: local LoRA, swarm without LoRA (input-embedding gradient), swarm with LoRA; + bytes table."""
    from client import AutoDistributedModelForCausalLM

    torch.set_num_threads(s.threads)
    kw = dict(initial_peers=peers)
    plain = AutoDistributedModelForCausalLM.from_pretrained(s.model, **kw)
    tuned = AutoDistributedModelForCausalLM.from_pretrained(s.model, tuning_mode="lora", lora_rank=8, **kw)
    try:
        with torch.no_grad():  # B != 0 so the swarm's LoRA gradients are not trivially zero
            for b in tuned.lora.b:
                b.normal_(0, 0.01, generator=torch.Generator().manual_seed(1))
        steps = {"local LoRA (1 process)": LocalLoraStep(s, tuned.lora.layout()),
                 "swarm, no LoRA (grad to inputs)": EmbedsStep(plain), "swarm, LoRA r=8 q/v": SwarmStep(tuned)}
        ids = torch.randint(0, int(tuned.config.vocab_size), (s.batch, s.seq), generator=torch.Generator().manual_seed(0))
        times, losses = {k: [] for k in steps}, {}
        for rep in range(s.warmup + s.reps):
            for name, step in steps.items():
                dt, losses[name] = timed(step, ids)
                if rep >= s.warmup:
                    times[name].append(dt)
        a, _, b = losses.values()
        assert abs(a - b) < 1e-3 * max(1.0, abs(a)), f"local LoRA loss {a} != swarm LoRA loss {b}"
        return times, bytes_table(s, tuned)
    finally:
        plain.close()
        tuned.close()


def bytes_table(s: Setup, model) -> str:
    """Protobuf bytes per request of each hop: hidden states vs the LoRA weights it carries."""
    from pollen import wire
    from pollen.model import lora as lora_mod

    hidden = wire.encode(torch.zeros(s.batch, s.seq, int(model.config.hidden_size))).ByteSize()
    lora, n = model.lora.layout(), model.lora.a[0].shape[0]
    rows = ["| hop | hidden states (bytes) | LoRA weights (bytes) | Forward request | Backward request | "
            "Backward response |", "|---|---:|---:|---:|---:|---:|"]
    for lo, hi in ((0, n // 2), (n // 2, n)):
        w = lora_mod.to_proto(lora.slice(lo, hi)).ByteSize()
        rows.append(f"| blocks [{lo}, {hi}) | {hidden} | {w} | {hidden + w} (+{w / hidden:.0%}) | "
                    f"{2 * hidden + w} (+{w / (2 * hidden):.0%}) | {hidden + w} (+{w / hidden:.0%}) |")
    return "\n".join(rows)


def table(s: Setup, times: dict[str, list[float]], prompt_tokens: bool = True) -> str:
    tokens = s.batch * (s.seq + (s.pre_seq_len if prompt_tokens else 0))
    local = statistics.median(next(iter(times.values())))
    rows = ["| configuration | step (median s) | tokens/s | vs local |", "|---|---:|---:|---:|"]
    for name, ts in times.items():
        med = statistics.median(ts)
        rows.append(f"| {name} | {med:.3f} | {tokens / med:.0f} | {local / med:.2f}x |")
    return "\n".join(rows)


def report(s: Setup, times, argv) -> str:
    head = (f"Training throughput, prompt tuning (forward + backward to the prompts), {s.model.name}, "
            f"batch {s.batch} x {s.seq} tokens + {s.pre_seq_len} prompt tokens, fp32, {s.reps} repetitions "
            f"(medians), {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}); "
            f"servers 1 torch thread each, this process {s.threads}; load average at the end "
            f"{os.getloadavg()[0]:.1f} (a shared box: other jobs ran too).")
    why = ("The swarm computes one more forward per step than one process: Forward (no grad) to get "
           "the loss, then each server's Backward recomputes its span's forward with autograd (servers "
           "keep no activations between requests), so it does roughly 4/3 of the local compute (less: a "
           "forward without autograd is cheaper); "
           "the rest is gRPC, receipts and the client's embeddings / LM head.")
    cmd = "    .venv/bin/python benchmarks/training.py " + " ".join(argv)
    return f"{head}\n\n{table(s, times)}\n\n{why}\n\nReproduce:\n\n{cmd.rstrip()}\n"


def lora_report(s: Setup, times, nbytes: str, argv) -> str:
    head = (f"Training step with client-owned LoRA (rank 8, alpha 16, q_proj + v_proj of every block) vs "
            f"no LoRA, {s.model.name}, batch {s.batch} x {s.seq} tokens, fp32, {s.reps} repetitions (medians), "
            f"{os.cpu_count()} CPU cores; servers 1 torch thread each. The no-LoRA swarm row runs the same "
            f"Forward + Backward for the gradient w.r.t. the input embeddings. Load average at the end "
            f"{os.getloadavg()[0]:.1f}.")
    cmd = "    .venv/bin/python benchmarks/training.py " + " ".join(argv)
    return (f"{head}\n\n{table(s, times, prompt_tokens=False)}\n\nBytes per request (protobuf, fp32, no "
            f"compression; LoRA weights go with every Forward and Backward, their gradients come back with "
            f"every Backward):\n\n{nbytes}\n\nReproduce:\n\n{cmd.rstrip()}\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=ROOT / ".cache" / "models" / "smollm2-135m")
    ap.add_argument("--batch", type=int, default=Setup.batch)
    ap.add_argument("--seq", type=int, default=Setup.seq)
    ap.add_argument("--threads", type=int, default=Setup.threads,
                    help="torch threads here (2 on a busy 2-core box made the local step 10x slower)")
    ap.add_argument("--quick", action="store_true", help="3 repetitions")
    ap.add_argument("--out", type=Path, help="also write the report (markdown) here")
    ap.add_argument("--lora", action="store_true", help="client LoRA (r=8 on q_proj, v_proj) vs none, bytes/request")
    a = ap.parse_args()
    if not (a.model / "config.json").is_file():
        sys.exit(f"{a.model} has no checkpoint: run `make prepare-smollm2` first")
    import procs
    from pollen.model import family_of, load_config

    cfg = load_config(a.model)
    n = family_of(cfg).num_blocks(cfg)
    s = Setup(a.model, a.batch, a.seq, reps=3 if a.quick else Setup.reps, threads=a.threads)
    servers = procs.start(a.model, [(0, n // 2), (n // 2, n)])
    try:
        peers = [x.address for x in servers]
        text = lora_report(s, *measure_lora(s, peers), sys.argv[1:]) if a.lora else \
            report(s, measure(s, peers), sys.argv[1:])
    finally:
        procs.stop_all(servers)
    print(text)
    if a.out:
        a.out.write_text(f"# Training throughput\n\n{text}")


if __name__ == "__main__":
    main()
