"""Prompt-tune SmolLM2-135M through a swarm of >= 2 `pollen serve` processes on a generated task.

The task (made here, nothing downloaded): short sentences mentioning an animal, a food or a
vehicle, followed by "Label:"; the answer is the next token " animal" / " food" / " vehicle".
The base model, scored on which of the three it ranks first, is right about 60% of the time;
8 trainable prompt embeddings make it reliable while the 30 blocks stay frozen on the servers.
Held-out sentences use nouns never seen in training.

    make prepare-smollm2                                   # once: the checkpoint
    .venv/bin/python examples/prompt_tuning.py             # starts 2 servers [0,15) [15,30)
    .venv/bin/python examples/prompt_tuning.py --peers 127.0.0.1:5000,127.0.0.1:5001

Prints the loss per step (progress bar), held-out accuracy before/after, saves the prompts in
the peft layout (default .cache/prompts-smollm2-topic) and checks the saved copy scores the same.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "python" / "swarm"))  # procs: start / stop servers

import torch  # noqa: E402

NOUNS = {  # (train nouns, held-out nouns) per class
    "animal": (["cat", "dog", "horse", "rabbit", "tiger", "sheep", "eagle", "mouse"], ["lion", "goat", "wolf", "duck"]),
    "food": (["apple", "bread", "cheese", "banana", "soup", "cake", "rice", "pizza"], ["carrot", "egg", "pie", "salad"]),
    "vehicle": (["car", "bus", "truck", "bicycle", "train", "boat", "van", "tractor"], ["plane", "taxi", "ship", "scooter"]),
}
TEMPLATES = ["I saw a {} yesterday.", "There is a {} near the house.", "My friend likes the {}.",
             "Look at that {} over there!", "We talked about a {} at lunch.", "The {} was bigger than I thought.",
             "She pointed at the old {}.", "Have you ever seen such a {}?"]
ANSWER = "\nLabel:"
LABELS = list(NOUNS)


@dataclass(frozen=True)
class Options:
    model: Path
    peers: list[str] | None
    steps: int = 30
    batch: int = 8
    pre_seq_len: int = 8
    lr: float = 0.02
    init_text: str = "Is it an animal, a food or a vehicle?"
    eval_n: int = 48
    seed: int = 0
    out: Path = ROOT / ".cache" / "prompts-smollm2-topic"


def examples(split: str, n: int, seed: int) -> list[tuple[str, str]]:
    """n (sentence, label) pairs from the train or held-out nouns, balanced over labels."""
    rng = random.Random(f"{split}-{seed}")
    out = []
    for i in range(n):
        label = LABELS[i % 3]
        noun = rng.choice(NOUNS[label][0 if split == "train" else 1])
        out.append((rng.choice(TEMPLATES).format(noun), label))
    return out


def encode(tok, pairs: list[tuple[str, str]]):
    """Right-padded ids (B, T) of 'sentence\\nLabel: X', mask, labels (-100 except the answer)."""
    rows = [tok(s + ANSWER).input_ids + tok(" " + y).input_ids for s, y in pairs]
    t = max(map(len, rows))
    ids = torch.full((len(rows), t), tok.pad_token_id or 2)
    mask = torch.zeros(len(rows), t, dtype=torch.long)
    labels = torch.full((len(rows), t), -100)
    for i, r in enumerate(rows):
        ids[i, :len(r)], mask[i, :len(r)], labels[i, len(r) - 1] = torch.tensor(r), 1, r[-1]
    return ids, mask, labels


@torch.no_grad()
def accuracy(model, tok, pairs, batch: int = 8) -> float:
    """Share of answers where the right label word beats the other two at the answer position."""
    letters = torch.tensor([tok(" " + c).input_ids[0] for c in LABELS])
    right = 0
    for i in range(0, len(pairs), batch):
        ids, mask, labels = encode(tok, pairs[i:i + batch])
        logits = model(ids, attention_mask=mask).logits  # (B, T, V)
        pos = (labels != -100).int().argmax(-1) - 1  # the position that predicts the answer
        scores = logits[torch.arange(len(ids)), pos][:, letters]  # (B, 3)
        right += (letters[scores.argmax(-1)] == labels[torch.arange(len(ids)), pos + 1]).sum().item()
    return right / len(pairs)


def train(model, tok, opt: Options) -> list[float]:
    from tqdm import tqdm

    optim = torch.optim.Adam(model.trainable_parameters(), lr=opt.lr)
    data = examples("train", opt.steps * opt.batch, opt.seed)
    losses = []
    bar = tqdm(range(opt.steps), desc="prompt tuning", unit="step")
    for step in bar:
        ids, mask, labels = encode(tok, data[step * opt.batch:(step + 1) * opt.batch])
        optim.zero_grad()
        loss = model(ids, attention_mask=mask, labels=labels).loss
        loss.backward()  # through both servers' Backward
        optim.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{loss.item():.3f}")
    return losses


def run(opt: Options) -> dict:
    from client import AutoDistributedModelForCausalLM

    held_out = examples("test", opt.eval_n, opt.seed)
    load = lambda **kw: AutoDistributedModelForCausalLM.from_pretrained(opt.model, initial_peers=opt.peers, **kw)
    base = load()
    try:
        before = accuracy(base, base.tokenizer, held_out)
    finally:
        base.close()
    print(f"held-out accuracy of the base model: {before:.1%}", flush=True)
    model = load(tuning_mode="ptune", pre_seq_len=opt.pre_seq_len, prompt_init_text=opt.init_text)
    try:
        start = accuracy(model, model.tokenizer, held_out)
        print(f"held-out accuracy with the initial prompts ({opt.init_text!r}): {start:.1%}", flush=True)
        t0 = time.monotonic()
        losses = train(model, model.tokenizer, opt)
        seconds = time.monotonic() - t0
        after = accuracy(model, model.tokenizer, held_out)
        model.save_pretrained(opt.out)
    finally:
        model.close()
    saved = load(adapter=opt.out)
    try:
        reloaded = accuracy(saved, saved.tokenizer, held_out)
    finally:
        saved.close()
    return dict(before=before, start=start, after=after, reloaded=reloaded, losses=losses, seconds=seconds)


def report(res: dict, opt: Options) -> None:
    print(f"held-out accuracy: base {res['before']:.1%}, initial prompts {res['start']:.1%} -> prompt-tuned {res['after']:.1%} "
          f"(reloaded from {opt.out}: {res['reloaded']:.1%}); {len(res['losses'])} steps in {res['seconds']:.0f} s")
    print("\n| step | loss |\n|---:|---:|")
    for i, loss in enumerate(res["losses"]):
        if i % 5 == 0 or i == len(res["losses"]) - 1:
            print(f"| {i + 1} | {loss:.3f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=ROOT / ".cache" / "models" / "smollm2-135m")
    ap.add_argument("--peers", help="comma-separated servers covering all blocks (default: start 2 here)")
    ap.add_argument("--steps", type=int, default=Options.steps)
    ap.add_argument("--batch", type=int, default=Options.batch)
    ap.add_argument("--pre-seq-len", type=int, default=Options.pre_seq_len)
    ap.add_argument("--lr", type=float, default=Options.lr)
    ap.add_argument("--out", type=Path, default=Options.out)
    a = ap.parse_args()
    if not (a.model / "config.json").is_file():
        sys.exit(f"{a.model} has no checkpoint: run `make prepare-smollm2` first")
    opt = Options(a.model, a.peers.split(",") if a.peers else None, a.steps, a.batch, a.pre_seq_len, a.lr, out=a.out)
    servers = []
    if opt.peers is None:
        import procs

        print("starting 2 servers: blocks [0, 15) and [15, 30) ...", flush=True)
        servers = procs.start(opt.model, [(0, 15), (15, 30)])
        opt = Options(**{**opt.__dict__, "peers": [s.address for s in servers]})
    try:
        report(run(opt), opt)
    finally:
        procs.stop_all(servers) if servers else None


if __name__ == "__main__":
    main()
