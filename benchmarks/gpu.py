"""GPU benchmark: a 7B-class Llama with random weights (no download) in bf16, as one process and
over 2 `pollen serve` processes on the same GPU; decode tok/s and the ratio; memory per block
in bf16, int8 and NF4 (bitsandbytes).

    .venv/bin/python benchmarks/gpu.py                      # on a CUDA machine: Llama-2-7B's shape
    .venv/bin/python benchmarks/gpu.py --layers 8           # a quicker 7B-wide slice
    .venv/bin/python benchmarks/gpu.py --smoke              # tiny shape on the CPU: the script runs

Repetitions are interleaved (one process, then the swarm, ...) and medians reported. The client
parts (embeddings, LM head) run on the GPU too (`from_pretrained(..., device=)`). Greedy tokens
of both are compared (bf16 kernels may differ in the last bits, so "identical" can be "no").
"""

from __future__ import annotations

import argparse
import os
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

LLAMA_7B = dict(hidden_size=4096, intermediate_size=11008, num_attention_heads=32, num_key_value_heads=32,
                vocab_size=32000)
SMOKE = dict(hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2, vocab_size=320)


def build_checkpoint(folder: Path, layers: int, shape: dict, dtype: torch.dtype, device: torch.device) -> Path:
    """A random-weight Llama saved as safetensors (initialised on `device`: fast on a GPU)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(num_hidden_layers=layers, max_position_embeddings=4096, tie_word_embeddings=False,
                         **shape)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    with torch.device(device):
        model = LlamaForCausalLM(config).to(dtype).eval()
    model.save_pretrained(folder)
    print(f"built {layers}-layer checkpoint ({sum(p.numel() for p in model.parameters()) / 1e9:.2f} B params) "
          f"in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return model


def block_bytes(folder: Path, dtype: str, device: torch.device, quant: str) -> int:
    """Memory of block 0 as a server holds it: parameters and buffers (bitsandbytes' packed
    weights and scales included), measured on the device where it is CUDA."""
    from pollen.model import load_span

    if device.type == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated(device)
    span = load_span(folder, 0, 1, dtype, device)
    if quant != "none":
        from pollen.model.quant import quantize_span

        span = quantize_span(span, quant)
    if device.type == "cuda":
        torch.cuda.synchronize()
        used = torch.cuda.memory_allocated(device) - before
    else:
        used = sum(t.numel() * t.element_size() for t in [*span.parameters(), *span.buffers()])
    del span
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return used


def timed_generate(model, ids, new: int) -> tuple[float, list[int]]:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=new, min_new_tokens=new, do_sample=False)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t0, out[0, ids.shape[1]:].tolist()


def run(args) -> None:
    import procs
    from client import AutoDistributedModelForCausalLM
    from pollen.devices import resolve_device, resolve_dtype

    device = resolve_device(args.device)
    dtype_name = resolve_dtype(args.dtype, device)
    dtype = getattr(torch, dtype_name)
    layers, shape = (4, SMOKE) if args.smoke else (args.layers, LLAMA_7B)
    with tempfile.TemporaryDirectory(prefix="pollen-gpu-bench-", dir=args.work_dir) as tmp:
        folder = Path(tmp) / "llama"
        hf = build_checkpoint(folder, layers, shape, dtype, device)
        half = layers // 2
        servers = procs.start(folder, [(0, half), (half, layers)], "--device", str(device), "--dtype", dtype_name,
                              log_dir=Path(tmp), threads=args.threads)
        try:
            client = AutoDistributedModelForCausalLM.from_pretrained(
                folder, initial_peers=[s.address for s in servers], device=str(device), torch_dtype=dtype)
            ids = torch.randint(0, shape["vocab_size"], (1, args.prompt), generator=torch.Generator().manual_seed(0))
            ids_dev = ids.to(device)
            timed_generate(hf, ids_dev, 2), timed_generate(client, ids, 2)  # warm up both
            one, swarm, same = [], [], True
            for rep in range(args.reps):
                s1, t1 = timed_generate(hf, ids_dev, args.new_tokens)
                s2, t2 = timed_generate(client, ids, args.new_tokens)
                one.append(args.new_tokens / s1)
                swarm.append(args.new_tokens / s2)
                same &= t1 == t2
                print(f"rep {rep + 1}/{args.reps}: one process {one[-1]:.1f} tok/s, 2 servers {swarm[-1]:.1f}",
                      file=sys.stderr)
            client.close()
        finally:
            procs.stop_all(servers)
        del hf
        if device.type == "cuda":
            torch.cuda.empty_cache()
        memory = {q: block_bytes(folder, dtype_name, device, q) for q in args.quant}
    report(args, device, dtype_name, layers, one, swarm, same, memory)


def report(args, device, dtype_name, layers, one, swarm, same, memory) -> None:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (smoke run)"
    a, b = statistics.median(one), statistics.median(swarm)
    print(f"\n## Decode on {name}: Llama {'smoke' if args.smoke else '7B-shape'}, {layers} layers, {dtype_name}, "
          f"{args.new_tokens} new tokens, medians of {args.reps}\n")
    print("| | tok/s | x one process |\n|---|---|---|")
    print(f"| transformers, one process | {a:.1f} | 1.00 |")
    print(f"| Pollen, 2 servers on the same device | {b:.1f} | {b / a:.2f} |")
    print(f"\ngreedy tokens identical: {'yes' if same else 'no'}\n")
    print("| block 0 weights | MiB |\n|---|---|")
    for quant, used in memory.items():
        print(f"| {dtype_name if quant == 'none' else quant} | {used / 2**20:.1f} |")
    flags = " ".join(sys.argv[1:])
    print(f"\nreproduce: .venv/bin/python benchmarks/gpu.py {flags}".rstrip())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto", help="auto | cuda[:N] | cpu")
    ap.add_argument("--dtype", default="auto", help="auto (bf16 on GPUs that have it) | bfloat16 | float16 | float32")
    ap.add_argument("--layers", type=int, default=32, help="transformer blocks (Llama-2-7B: 32)")
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--prompt", type=int, default=16, help="prompt length (random ids)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=4, help="torch CPU threads per server process")
    ap.add_argument("--quant", nargs="*", default=None, help="block memory for: none int8 nf4 (default: all on "
                                                             "CUDA, none + int8 on the CPU)")
    ap.add_argument("--work-dir", default=None, help="where the checkpoint is written (7B bf16: 13.5 GB)")
    ap.add_argument("--smoke", action="store_true", help="tiny shape, CPU, 4 tokens: checks the script runs")
    args = ap.parse_args()
    if args.smoke:
        args.device, args.dtype, args.new_tokens, args.reps, args.threads = "cpu", "float32", 4, 1, 1
    if args.quant is None:
        args.quant = ["none", "int8", "nf4"] if torch.cuda.is_available() and not args.smoke else ["none", "int8"]
    run(args)


if __name__ == "__main__":
    main()
