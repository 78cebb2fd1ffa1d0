"""Trust-layer numbers: the honest spread a spot check / audit must tolerate, detection
probability per cheating rate and spot-check probability, and the compute a spot check adds.

    .venv/bin/python benchmarks/trust.py [--model .cache/models/smollm2-135m] [--tokens 24]

Spread = max relative L2 error (the manifest's metric) between a server's step-by-step outputs
(KV cache) and an auditor's float32 parallel replay of the same inputs, across dtypes, torch
thread counts and batch sizes. Run in-process on the span models the servers use.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pollen.evidence import relative_error  # noqa: E402
from pollen.model import family_of, load_client, load_config, load_span  # noqa: E402


def incremental(span, x: torch.Tensor) -> torch.Tensor:
    """Step-by-step outputs with a KV cache: prompt first, then one token per step."""
    cache = span.new_cache(x.shape[0], x.shape[1])
    outs = [span(x[:, :8], cache)]
    for t in range(8, x.shape[1]):
        outs.append(span(x[:, t:t + 1], cache))
    return torch.cat(outs, 1)


def spread_rows(path: str, tokens: int) -> list[tuple[str, float]]:
    config = load_config(path)
    n = family_of(config).num_blocks(config)
    _, _, parts = load_client(path, "float32")
    ids = torch.randint(0, int(config.vocab_size), (4, tokens), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        x = parts.embed(ids)
        fp32, bf16 = load_span(path, 0, n, "float32"), load_span(path, 0, n, "bfloat16")
        ref = fp32(x[:1], None)  # the auditor: float32, one parallel forward
        rows = [("fp32 step-by-step vs fp32 replay", relative_error(incremental(fp32, x[:1]), ref)),
                ("bf16 step-by-step vs fp32 replay", relative_error(incremental(bf16, x[:1].bfloat16()), ref)),
                ("fp32 batch of 4 (row 0) vs replay", relative_error(incremental(fp32, x)[:1], ref))]
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        one = incremental(fp32, x[:1])
        torch.set_num_threads(max(2, threads))
        rows.append(("fp32 1 thread vs 2 threads", relative_error(one, incremental(fp32, x[:1]))))
        torch.set_num_threads(threads)
    return rows


def spot_check_cost(path: str, tokens: int) -> tuple[float, float]:
    """(seconds to generate `tokens` step by step, seconds for one parallel replay of them)."""
    config = load_config(path)
    span = load_span(path, 0, family_of(config).num_blocks(config), "float32")
    x = torch.randn(1, tokens, int(config.hidden_size), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        t = time.perf_counter()
        incremental(span, x)
        gen = time.perf_counter() - t
        t = time.perf_counter()
        span(x, None)
        replay = time.perf_counter() - t
    return gen, replay


def detection_table(steps: int) -> list[str]:
    """P(a session of `steps` steps through a cheater is caught) = p * (1 - (1 - r)^steps), for
    corruptions larger than the tolerance (smaller ones are, by definition, within tolerance)."""
    rates, probs = [0.01, 0.1, 1.0], [0.05, 0.1, 0.5, 1.0]
    lines = ["| spot-check p \\ cheating rate r | " + " | ".join(f"r = {r:g}" for r in rates) + " |",
             "|---|" + "---:|" * len(rates)]
    for p in probs:
        cells = []
        for r in rates:
            per = p * (1 - (1 - r) ** steps)
            sessions = (torch.log(torch.tensor(0.05)) / torch.log(torch.tensor(1 - per))).item() if per < 1 else 1
            cells.append(f"{per:.3f} (95 % after {max(1, round(sessions))} sessions)")
        lines.append(f"| p = {p:g} | " + " | ".join(cells) + " |")
    return lines


@click.command()
@click.option("--model", default=".cache/models/smollm2-135m", show_default=True)
@click.option("--tokens", default=24, show_default=True)
@click.option("--tolerance", default=0.25, show_default=True, help="tolerance published by the demo")
def main(model, tokens, tolerance):
    print(f"## Honest spread ({Path(model).name}, {tokens} tokens; tolerance {tolerance:g})\n")
    print("| comparison | max relative L2 error | margin to tolerance |\n|---|---:|---:|")
    for name, err in spread_rows(model, tokens):
        print(f"| {name} | {err:.2e} | {tolerance / max(err, 1e-12):.1f}x |" if err else f"| {name} | 0 | inf |")
    print(f"\n## Detection probability per session ({tokens} steps)\n")
    print("\n".join(detection_table(tokens)))
    gen, replay = spot_check_cost(model, tokens)
    print(f"\n## Spot-check compute\n\nstep-by-step generation of {tokens} tokens: {gen:.3f}s; one parallel "
          f"replay of them: {replay:.3f}s ({replay / gen:.0%} of the session; x2 with the tie-break "
          "server on a mismatch). At probability p the swarm does p x that much extra work.")


if __name__ == "__main__":
    main()
