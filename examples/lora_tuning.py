"""LoRA-tune SmolLM2-135M through 2 `pollen serve` processes, publish the adapter, use it by name.

Same generated task as examples/prompt_tuning.py (sentence -> " animal" / " food" / " vehicle",
held-out nouns). The client owns rank-8 LoRA weights on q_proj and v_proj of all 30 blocks;
every Forward / Backward carries them, the servers return their gradients. Then the adapter is
saved (peft LoRA layout), published as per-block shards next to the published model version in
an embedded content store, two fresh servers load it by CID (`--adapter`), and a second client
that never saw the weights names it (`active_adapter=CID`) and scores the same.

    make prepare-smollm2
    .venv/bin/python examples/lora_tuning.py               # ~4-6 minutes on a busy 2-core box
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "python" / "swarm"))  # procs: start / stop servers
sys.path.insert(0, str(ROOT / "examples"))

import torch  # noqa: E402

from prompt_tuning import accuracy, encode, examples  # noqa: E402  (the task and its metric)


def train(model, tok, steps: int, batch: int, lr: float) -> list[float]:
    from tqdm import tqdm

    optim = torch.optim.Adam(model.trainable_parameters(), lr=lr)
    data = examples("train", steps * batch, 0)
    losses = []
    bar = tqdm(range(steps), desc="LoRA tuning", unit="step")
    for step in bar:
        ids, mask, labels = encode(tok, data[step * batch:(step + 1) * batch])
        optim.zero_grad()
        loss = model(ids, attention_mask=mask, labels=labels).loss
        loss.backward()  # the servers' Backward returns dL/dA, dL/dB of their blocks
        optim.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{loss.item():.3f}")
    return losses


def publish(model_path: Path, adapter_dir: Path, store_dir: Path) -> tuple[str, float]:
    """(adapter CID, seconds): the model version, then the adapter tagged with it."""
    from pollen.adapters import publish_lora
    from pollen.publish import publish_checkpoint
    from pollen.store import LocalStore

    store = LocalStore(store_dir)
    t0 = time.monotonic()
    base = publish_checkpoint(model_path, store, progress=True).manifest_cid
    cid, _ = publish_lora(adapter_dir, store, base, name="smollm2-topic-lora")
    return cid, time.monotonic() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=ROOT / ".cache" / "models" / "smollm2-135m")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--rank", type=int, default=8)
    a = ap.parse_args()
    if not (a.model / "config.json").is_file():
        sys.exit(f"{a.model} has no checkpoint: run `make prepare-smollm2` first")
    import procs
    from client import AutoDistributedModelForCausalLM

    held_out = examples("test", 48, 0)
    with tempfile.TemporaryDirectory(prefix="pollen-lora-example-") as tmp:
        tmp = Path(tmp)
        print("starting 2 servers: blocks [0, 15) and [15, 30) ...", flush=True)
        servers = procs.start(a.model, [(0, 15), (15, 30)])
        peers = [s.address for s in servers]
        try:
            model = AutoDistributedModelForCausalLM.from_pretrained(a.model, initial_peers=peers, tuning_mode="lora",
                                                                    lora_rank=a.rank, lora_alpha=2.0 * a.rank)
            before = accuracy(model, model.tokenizer, held_out)  # B = 0: the base model
            print(f"held-out accuracy of the base model: {before:.1%}", flush=True)
            t0 = time.monotonic()
            losses = train(model, model.tokenizer, a.steps, a.batch, a.lr)
            seconds = time.monotonic() - t0
            after = accuracy(model, model.tokenizer, held_out)
            adapter_dir = model.save_pretrained(tmp / "lora")
            model.close()
        finally:
            procs.stop_all(servers)
        print(f"held-out accuracy after {a.steps} LoRA steps ({seconds:.0f} s): {after:.1%}", flush=True)
        cid, pub_s = publish(a.model, adapter_dir, tmp / "store")
        print(f"published adapter {cid} ({pub_s:.1f} s with the model version); starting 2 servers that load it ...",
              flush=True)
        servers = procs.start(a.model, [(0, 15), (15, 30)], "--adapter", cid, "--adapter-store", str(tmp / "store"))
        try:
            other = AutoDistributedModelForCausalLM.from_pretrained(a.model, initial_peers=[s.address for s in servers],
                                                                    active_adapter=cid)
            by_name = accuracy(other, other.tokenizer, held_out)
            other.close()
        finally:
            procs.stop_all(servers)
    print(f"held-out accuracy: base {before:.1%} -> LoRA-tuned {after:.1%}; a second client naming the published "
          f"adapter: {by_name:.1%}")
    print("\n| step | loss |\n|---:|---:|")
    for i, loss in enumerate(losses):
        if i % 4 == 0 or i == len(losses) - 1:
            print(f"| {i + 1} | {loss:.3f} |")


if __name__ == "__main__":
    main()
