"""Published LoRA adapters: load time by CID and the overhead of an adapter on decode tokens/s.

A random rank-8 LoRA (q_proj, v_proj, every block) of the model is saved in the peft layout,
published as per-block shards (pollen.adapters) to an embedded store next to the published
model version, then:
  * load time: `load_lora(store, cid, first, last)` for each server's half (fetch + verify by
    CID + stack), median of a few runs;
  * decode: 2 `pollen serve` processes (halves, 1 torch thread each) that loaded the adapter at
    start; greedy decode sessions (batch 1) with and without `active_adapter`, interleaved,
    tokens/s over the decode steps (the prefill excluded).

    .venv/bin/python benchmarks/adapters.py            # SmolLM2-135M
    .venv/bin/python benchmarks/adapters.py --quick
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


def publish(model: Path, tmp: Path):
    """(store, adapter CID, adapter bytes) for a random rank-8 q/v LoRA of `model`."""
    from client import AutoDistributedModelForCausalLM
    from pollen.adapters import publish_lora
    from pollen.publish import publish_checkpoint
    from pollen.store import LocalStore

    store = LocalStore(tmp / "store")
    base = publish_checkpoint(model, store).manifest_cid
    m = AutoDistributedModelForCausalLM.from_pretrained(model, initial_peers=["127.0.0.1:9"], tuning_mode="lora")
    with torch.no_grad():
        for b in m.lora.b:
            b.normal_(0, 0.01, generator=torch.Generator().manual_seed(0))
    folder = m.save_pretrained(tmp / "lora")
    cid, manifest = publish_lora(folder, store, base)
    return store, cid, sum(f.size for f in manifest.files)


def load_times(store, cid: str, n: int, reps: int) -> list[float]:
    from pollen.adapters import load_lora

    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for lo, hi in ((0, n // 2), (n // 2, n)):
            load_lora(store, cid, lo, hi)
        times.append((time.perf_counter() - t0) / 2)  # per server half
    return times


def decode_rate(model, ids: torch.Tensor, new: int) -> float:
    """Decode tokens/s of one greedy session (prefill excluded)."""
    with model.inference_session(max_length=ids.shape[1] + new) as sess:
        h = model.parts.embed(ids)
        with torch.no_grad():
            out = sess.step(h)
            t0 = time.perf_counter()
            for _ in range(new):
                nxt = model.parts.head(out[:, -1:]).argmax(-1)
                out = sess.step(model.parts.embed(nxt))
        return new / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=ROOT / ".cache" / "models" / "smollm2-135m")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    import procs
    from client import AutoDistributedModelForCausalLM
    from pollen.model import family_of, load_config

    torch.set_num_threads(1)
    cfg = load_config(a.model)
    n = family_of(cfg).num_blocks(cfg)
    reps, new = (3, 16) if a.quick else (7, 32)
    with tempfile.TemporaryDirectory(prefix="pollen-bench-adapters-") as tmp:
        store, cid, nbytes = publish(a.model, Path(tmp))
        loads = load_times(store, cid, n, reps)
        servers = procs.start(a.model, [(0, n // 2), (n // 2, n)], "--adapter", cid, "--adapter-store", str(store.root))
        try:
            peers = [s.address for s in servers]
            plain = AutoDistributedModelForCausalLM.from_pretrained(a.model, initial_peers=peers)
            named = AutoDistributedModelForCausalLM.from_pretrained(a.model, initial_peers=peers, active_adapter=cid)
            ids = torch.randint(0, int(cfg.vocab_size), (1, 8), generator=torch.Generator().manual_seed(0))
            rates = {"no adapter": [], "published LoRA r=8 q/v": []}
            decode_rate(plain, ids, 4)  # warm-up
            for _ in range(reps):
                rates["no adapter"].append(decode_rate(plain, ids, new))
                rates["published LoRA r=8 q/v"].append(decode_rate(named, ids, new))
            plain.close()
            named.close()
        finally:
            procs.stop_all(servers)
    base = statistics.median(rates["no adapter"])
    print(f"Published LoRA adapter, {a.model.name}, rank 8 on q_proj + v_proj of all {n} blocks "
          f"({nbytes} bytes in {n} block shards + config), {reps} repetitions (medians), {os.cpu_count()} CPU "
          f"cores, load average at the end {os.getloadavg()[0]:.1f}.\n")
    print(f"Load by CID (fetch + verify + stack, one server's half of the blocks, embedded store): "
          f"{statistics.median(loads) * 1000:.1f} ms\n")
    print("| decode, batch 1, 2 servers | tokens/s | vs no adapter |\n|---|---:|---:|")
    for name, rs in rates.items():
        print(f"| {name} | {statistics.median(rs):.1f} | {statistics.median(rs) / base:.2f}x |")
    print(f"\nReproduce:\n\n    .venv/bin/python benchmarks/adapters.py {' '.join(sys.argv[1:])}".rstrip())


if __name__ == "__main__":
    main()
