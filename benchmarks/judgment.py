"""Calibration of judgment v2: honest spread vs cheats, per block and per token, on natural text.

    .venv/bin/python benchmarks/judgment.py            # full run (~5 min on a 2-core box)
    .venv/bin/python benchmarks/judgment.py --quick    # fewer prompts / positions (~1.5 min)

A "server" runs a span step by step with a KV cache (a prompt chunk, then one token per step,
the real decode pattern) and commits per-block sketches (`pollen.judgment.sketch`, through
`SpanModel.forward(trace=...)`). The "auditor" replays the same committed input in float32 in
one parallel forward and compares block by block with `pollen.judgment.max_error` (max over
tokens of the per-token relative L2 error; here also over blocks). Every row is measured both on
sketches (what is judged) and on full block outputs, next to the old whole-span metric
`pollen.evidence.relative_error` (one relative L2 over the span's flattened final output).

Honest rows take the MAX over prompts (the spread a tolerance must absorb); cheat rows take the
MIN over prompts and over the block positions tried (the cheat hardest to see). Writes the same
markdown to benchmarks/results/judgment.md.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import shlex
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import click
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pollen.evidence import relative_error  # noqa: E402
from pollen.judgment import SKETCH_DIM, blocks_root, sketch, token_errors  # noqa: E402
from pollen.model import family_of, load_client, load_config, load_span  # noqa: E402

# Natural English prose (written for this benchmark), one prompt per paragraph; each is cut to
# the first `--tokens` tokens of its SmolLM2 tokenisation.
PROSE = [
    "The lighthouse keeper climbed the spiral stairs every evening at dusk, carrying a tin of oil "
    "and a cloth for the lens. He had done it for thirty-one years, through storms that rattled the "
    "windows and calm nights when the sea lay flat as slate. Ships no longer needed him, strictly "
    "speaking; the beacon had been automated a decade ago. But he liked to think that someone out "
    "on the water still looked up and felt, for a moment, less alone.",
    "Bread is one of the oldest prepared foods. Archaeologists have found charred crumbs in hearths "
    "that are more than fourteen thousand years old, long before people planted the first fields of "
    "wheat. Early loaves were flat and dense, baked on hot stones. Leavened bread came later, "
    "probably by accident, when wild yeast drifted into a bowl of dough that had been left standing "
    "in a warm corner of the kitchen overnight.",
    "When the city council voted to close the old railway bridge to cars, many residents were "
    "furious. Shop owners on the east bank predicted ruin, and a petition gathered nine thousand "
    "signatures in a week. Two years later the bridge is full of cyclists, market stalls and people "
    "eating lunch in the sun, and the same shop owners report that business has never been better. "
    "Nobody seems to remember signing the petition.",
    "A good night of sleep does more than make us feel rested. While we sleep, the brain sorts the "
    "memories of the day, keeping some and discarding others, and it clears away waste products "
    "that build up between neurons. People who sleep poorly for weeks at a time find it harder to "
    "concentrate, to control their mood and to fight off infections. Doctors recommend going to bed "
    "and waking up at the same time every day, even on weekends.",
    "The committee met on a grey Tuesday morning to decide the fate of the library's rare book "
    "collection. Some members wanted to sell the most valuable volumes to pay for a new roof; others "
    "argued that a library which sells its books has forgotten what it is for. After three hours of "
    "debate they agreed on a compromise: the books would stay, and a public appeal would raise the "
    "money for the roof instead.",
    "To plant a tree well, dig a hole about twice as wide as the root ball but no deeper than it. "
    "Loosen the soil around the edges so the young roots can spread, and set the tree so that the "
    "point where the trunk flares out sits just above the ground. Fill the hole with the soil you "
    "removed, water it slowly and deeply, and cover the surface with a layer of mulch, keeping it "
    "away from the bark.",
    "Marta had never been good with maps. On her first morning in the old town she turned left "
    "instead of right, then right instead of left, and within twenty minutes she was standing in a "
    "quiet square she was sure no guidebook had ever mentioned. A fountain dripped in the middle, "
    "an old man was feeding pigeons, and a bakery on the corner smelled of cinnamon. She decided "
    "that being lost was not so bad after all.",
    "Glaciers move, although far too slowly for the eye to notice. Under its own enormous weight the "
    "ice deforms and slides over the rock beneath it, sometimes only a few centimetres a day, "
    "sometimes several metres. As it moves it scrapes the valley floor, carrying boulders and gravel "
    "for hundreds of kilometres. When the climate warms and the glacier retreats, it leaves that "
    "debris behind in long ridges that farmers still plough around today.",
]

PROMPT = 24  # tokens in the first (prompt) chunk; then one token per decode step


def quiet() -> None:
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)


def fmt(v: float) -> str:
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf"
    return "0" if v == 0 else f"{v:.2e}"


@dataclass
class Run:
    sk: torch.Tensor  # (n_blocks, B, T, K) committed sketches
    full: torch.Tensor  # (n_blocks, B, T, C) block outputs, float32


def _stack_step(trace: list, outs: list) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.stack(trace), torch.stack(outs)


def windowed_step(span, x, cache, window: int, tap, trace: list, step: int) -> torch.Tensor:
    """One decode step whose attention sees only the last `window` cached tokens (+ itself):
    the keys/values before them are simply not passed to the blocks (rope positions stay true)."""
    L = cache.length
    B, T, _ = x.shape
    pos = (L + torch.arange(T)).unsqueeze(0).expand(B, T)
    ctx = span.positions(x, pos)
    s = max(0, L - window)
    for i in range(len(span.blocks)):
        k, v = cache.layer(i)
        kv = (k[:, :, s:], v[:, :, s:])

        def run(j=None, x=x, kv=kv, i=i):
            return span.blocks[i if j is None else j](x, ctx, kv, L - s)
        x = tap(i, x, run, step)
        trace.append(sketch(x))
    cache.length += T
    return x


def serve(span, x: torch.Tensor, cheat=None, window: int | None = None, prompt: int = PROMPT) -> Run:
    """A server: prompt chunk, then one token per step, KV cache; cheat(i, x, run, step) or honest."""
    B, T, _ = x.shape
    cache = span.new_cache(B, T)
    chunks = [(0, prompt)] + [(t, t + 1) for t in range(prompt, T)]
    sks, fulls = [], []
    for step, (a, b) in enumerate(chunks):
        trace, outs = [], []

        def tap(i, h, run, step=step):
            y = cheat(i, h, run, step) if cheat is not None else run()
            outs.append(y.float())
            return y
        xin = x[:, a:b]
        if window is not None and step > 0:
            windowed_step(span, xin, cache, window, tap, trace, step)
        else:
            span(xin, cache, trace=trace, tamper=lambda i, h, run, tap=tap: tap(i, h, run))
        s, f = _stack_step(trace, outs)
        sks.append(s)
        fulls.append(f)
    return Run(torch.cat(sks, 2), torch.cat(fulls, 2))


def replay(span, x: torch.Tensor) -> Run:
    """The auditor: one float32 parallel forward of the committed input, per-block sketches."""
    trace, outs = [], []

    def tap(i, h, run):
        y = run()
        outs.append(y.float())
        return y
    span(x.float(), None, trace=trace, tamper=tap)
    return Run(torch.stack(trace), torch.stack(outs))


def errors(claim: Run, ref: Run) -> dict[str, torch.Tensor]:
    """Per batch row: judged error on sketches / on full tensors (max over blocks and tokens),
    the block holding the sketch max, and the old whole-span metric on the final output."""
    te_s = token_errors(claim.sk, ref.sk)  # (n, B, T)
    te_f = token_errors(claim.full, ref.full)
    per_block = te_s.amax(dim=2)  # (n, B)
    old = torch.tensor([relative_error(claim.full[-1][r:r + 1], ref.full[-1][r:r + 1])
                        for r in range(claim.full.shape[1])])
    return {"sk": te_s.amax(dim=(0, 2)), "full": te_f.amax(dim=(0, 2)),
            "block": per_block.argmax(dim=0), "old": old}


def vmax(t: torch.Tensor) -> float:
    return float("nan") if torch.isnan(t).any() else float(t.max())


def vmin(t: torch.Tensor) -> float:
    return float("nan") if torch.isnan(t).all() else float(t[~torch.isnan(t)].min())


# ---- cheats ------------------------------------------------------------------------------------
# A cheat is f(i, x, y, step, run) -> the claimed output of local block i for some batch rows,
# given their input x, the honest output y, the decode step, and run(j) (block j's weights on
# the whole batch). `grouped` serves several cheats (e.g. one per block position) in ONE batch:
# group g owns rows [g*P, (g+1)*P) (the same P prompts repeated), so a sweep costs one served
# session instead of one per position; rows never interact (attention is per row).

def grouped(cheats: list, per: int):
    def tamper(i, x, run, step):
        y = run()
        out = y.clone()
        for g, f in enumerate(cheats):
            rows = slice(g * per, (g + 1) * per)
            out[rows] = f(i, x[rows], y[rows], step, lambda j, rows=rows: run(j)[rows])
        return out
    return tamper


def skip(blocks: set[int]):
    return lambda i, x, y, step, run: x if i in blocks else y


def other_weights(at: int, use: int):
    return lambda i, x, y, step, run: run(use) if i == at else y


def noise(at: int, scale: float, seed: int = 7):
    g = torch.Generator().manual_seed(seed)

    def cheat(i, x, y, step, run):
        if i != at:
            return y
        rms = y.float().pow(2).mean(-1, keepdim=True).sqrt()
        return y + (scale * rms * torch.randn(y.shape, generator=g)).to(y.dtype)
    return cheat


def steer(at: int, alpha: float, hidden: int, seed: int = 11):
    u = torch.randn(hidden, generator=torch.Generator().manual_seed(seed))
    u = u / u.norm()

    def cheat(i, x, y, step, run):
        if i != at:
            return y
        return y + (alpha * y.float().norm(dim=-1, keepdim=True) * u).to(y.dtype)
    return cheat


def poison(at: int, value: float, step_at: int = 5):
    def cheat(i, x, y, step, run):
        if i == at and step == step_at:
            y = y.clone()
            y[:, -1, 0] = value
        return y
    return cheat


def perturbed(span, rel: float, seed: int = 3):
    """Another 'model version': every weight w -> w * (1 + rel * N(0, 1)) elementwise."""
    other = copy.deepcopy(span)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(1 + rel * torch.randn(p.shape, generator=g))
    return other


# ---- the measurement ---------------------------------------------------------------------------

def tokenize(model: str, n_prompts: int, tokens: int) -> torch.Tensor:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model, local_files_only=True)
    rows = []
    for text in PROSE[:n_prompts]:
        ids = tok(text)["input_ids"]
        if len(ids) < tokens:
            raise SystemExit(f"a prompt has only {len(ids)} tokens (< {tokens})")
        rows.append(ids[:tokens])
    return torch.tensor(rows)


def spans_inputs(model: str, ids: torch.Tensor, spans: list[tuple[int, int]]) -> dict:
    """Committed input of each span: embeddings, then the honest fp32 output of blocks [0, a)."""
    _, _, client = load_client(model, "float32")
    out = {}
    with torch.no_grad():
        h = client.embed(ids).float()
        done = 0
        for a, b in sorted(spans):
            if a > done:
                h = load_span(model, done, a, "float32")(h, None)
                done = a
            out[(a, b)] = h.clone()
    return out


def honest_rows(model: str, a: int, b: int, x: torch.Tensor, n_single: int, threads: int) -> list:
    """[(name, kind, dict of per-row tensors)] for one span; x holds all prompts (rows)."""
    from pollen.model.quant import quantize_span

    fp32 = load_span(model, a, b, "float32")
    singles = [x[r:r + 1] for r in range(n_single)]
    refs = {}  # auditor replays, batch 1, keyed by (row, wire dtype)

    def ref(r, dtype):
        if (r, dtype) not in refs:
            refs[(r, dtype)] = replay(fp32, singles[r].to(dtype))
        return refs[(r, dtype)]

    def cat(parts):
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}

    rows = []

    def per_prompt(name, kind, span, dtype=torch.float32, **kw):
        parts = [errors(serve(span, singles[r].to(dtype), **kw), ref(r, dtype)) for r in range(n_single)]
        rows.append((name, kind, cat(parts)))

    per_prompt(f"fp32, KV cache ({PROMPT}-token prompt + 1/step) vs replay", "fp32", fp32)
    per_prompt("fp32, KV cache from token 0 (1 token/step) vs replay", "fp32", fp32, prompt=1)
    per_prompt("bf16 weights+activations vs replay", "bf16", load_span(model, a, b, "bfloat16"), torch.bfloat16)
    per_prompt("fp16 weights+activations vs replay", "fp16", load_span(model, a, b, "float16"), torch.float16)
    for mode in ("int8", "nf4"):
        try:
            q = quantize_span(load_span(model, a, b, "float32"), mode)
            per_prompt(f"{mode} (bitsandbytes, fp32 activations) vs replay", mode, q)
        except Exception as exc:  # noqa: BLE001 - report, do not hide
            rows.append((f"{mode}: FAILED ({type(exc).__name__}: {exc})"[:120], mode, None))
    torch.set_num_threads(2)
    try:
        per_prompt("fp32 served at 2 threads vs replay at 1 thread", "fp32", fp32)
        parts = []
        for r in range(n_single):
            two = replay(fp32, singles[r])
            parts.append(errors(two, ref(r, torch.float32)))
        rows.append(("fp32 replay at 2 threads vs replay at 1 thread", "fp32", cat(parts)))
    finally:
        torch.set_num_threads(threads)
    batch = serve(fp32, x)
    parts = []
    for r in range(x.shape[0]):
        rr = replay(fp32, x[r:r + 1]) if r >= n_single else ref(r, torch.float32)
        parts.append(errors(Run(batch.sk[:, r:r + 1], batch.full[:, r:r + 1]), rr))
    rows.append((f"fp32 batch {x.shape[0]} (every row) vs replay batch 1", "fp32", cat(parts)))
    return rows


def sweep(span, x: torch.Tensor, ref: Run, cheats: list, window: int | None = None) -> list:
    """Serve every cheat of `cheats` on all prompts of x in one batch; one error dict per cheat."""
    P = x.shape[0]
    big = x.repeat(len(cheats), 1, 1)
    run = serve(span, big, grouped(cheats, P), window=window)
    out = []
    for g in range(len(cheats)):
        rows = slice(g * P, (g + 1) * P)
        out.append(errors(Run(run.sk[:, rows], run.full[:, rows]), ref))
    return out


def cheat_rows(model: str, a: int, b: int, x: torch.Tensor, quick: bool) -> list:
    """[(name, saves compute or changes model?, per-position list of per-row error dicts)]."""
    from pollen.model.quant import quantize_span

    fp32 = load_span(model, a, b, "float32")
    n, hidden = len(fp32.blocks), fp32.hidden_size
    ref = replay(fp32, x)  # auditor, same batch of prompts
    few = sorted({0, n // 2, n - 1})
    honest = lambda i, x, y, step, run: y  # noqa: E731
    rows = []
    positions = few if quick else list(range(n))
    rows.append((f"skip 1 block (positions {positions[0]}..{positions[-1]}, each)" if not quick else
                 f"skip 1 block (positions {positions})", True, sweep(fp32, x, ref, [skip({p}) for p in positions])))
    for k in (2, 3):
        ss = sorted({0, n // 2, n - k}) if not quick else [0, n - k]
        rows.append((f"skip {k} consecutive blocks (starts {ss})", True,
                     sweep(fp32, x, ref, [skip(set(range(s, s + k))) for s in ss])))
    ats = sorted({0, n // 2, n - 2}) if not quick else [n // 2]
    rows.append((f"block p runs block p+1's weights (p in {ats})", True,
                 sweep(fp32, x, ref, [other_weights(p, p + 1) for p in ats])))
    for mode in ("int8", "nf4"):
        try:
            q = quantize_span(load_span(model, a, b, "float32"), mode)
            rows.append((f"declares fp32, runs {mode} (undeclared)", True, sweep(q, x, ref, [honest])))
        except Exception as exc:  # noqa: BLE001
            rows.append((f"declares fp32, runs {mode}: FAILED ({type(exc).__name__})", True, []))
    if fp32.family.name == "llama":
        for w in (8, 32):
            rows.append((f"KV window: decode attends only to the last {w} cached tokens", True,
                         sweep(fp32, x, ref, [honest], window=w)))
    for s in (0.01, 0.05, 0.1, 0.2):
        rows.append((f"noise {s:g} x RMS at one block (p in {few})", False,
                     sweep(fp32, x, ref, [noise(p, s) for p in few])))
    for al in (0.1, 0.5):
        rows.append((f"steering vector {al:g} x token norm at one block (p in {few})", False,
                     sweep(fp32, x, ref, [steer(p, al, hidden) for p in few])))
    rows.append((f"NaN / Inf in one element (block {n // 2}, one step)", False,
                 sweep(fp32, x, ref, [poison(n // 2, math.nan), poison(n // 2, math.inf)])))
    for rel in (0.01, 0.05):
        rows.append((f"other model version (weights x (1 + {rel:g} N(0,1)))", True,
                     sweep(perturbed(fp32, rel), x, ref, [honest])))
    return rows


def summarize_cheat(per_pos: list) -> dict:
    """min over rows per position, then min / median over positions."""
    if not per_pos:
        return {}
    out = {}
    for key in ("sk", "full", "old"):
        vals = [vmin(e[key]) for e in per_pos]
        finite = [v for v in vals if not math.isnan(v)]
        out[key + "_min"] = min(finite) if finite else float("nan")
        out[key + "_med"] = statistics.median(finite) if finite else float("nan")
    return out


def bloom_family(quick: bool, tokens: int) -> tuple[list, list]:
    from pollen.model.tiny import make_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        path = make_checkpoint("bloom", tmp, seed=0, std=0.05, hidden_size=256, n_head=4, n_layer=6,
                               vocab_size=320)
        config = load_config(path)
        n = family_of(config).num_blocks(config)
        _, _, client = load_client(path, "float32")
        ids = torch.randint(0, 320, (4, tokens), generator=torch.Generator().manual_seed(5))
        with torch.no_grad():
            x = client.embed(ids).float()
            fp32, bf16 = load_span(path, 0, n, "float32"), load_span(path, 0, n, "bfloat16")
            honest = []
            for name, span, dt in (("fp32, KV cache vs replay", fp32, torch.float32),
                                   ("bf16 vs replay", bf16, torch.bfloat16)):
                parts = [errors(serve(span, x[r:r + 1].to(dt)), replay(fp32, x[r:r + 1].to(dt)))
                         for r in range(x.shape[0])]
                honest.append((name, {k: torch.cat([p[k] for p in parts]) for k in parts[0]}))
            ref = replay(fp32, x)
            pos = list(range(n))
            cheats = [(f"skip 1 block (positions 0..{n - 1}, each)", sweep(fp32, x, ref, [skip({p}) for p in pos])),
                      (f"noise 0.05 x RMS at one block (p in {[0, n // 2, n - 1]})",
                       sweep(fp32, x, ref, [noise(p, 0.05) for p in (0, n // 2, n - 1)]))]
    return honest, cheats


def timed(fn, repeat: int) -> float:
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def costs(model: str, a: int, b: int, x64: torch.Tensor, steps: int) -> dict:
    from eth_account import Account

    from pollen.receipts import KIND_INFERENCE, Receipt, ReceiptDomain, sign_receipt

    span = load_span(model, a, b, "float32")
    n = len(span.blocks)
    mid = n // 2
    out = {"n": n, "mid": mid}
    with torch.no_grad():
        span(x64, None)  # warm-up
        out["one"] = timed(lambda: span(x64, None, first=mid, last=mid + 1, trace=[]), 5)
        out["prefix"] = timed(lambda: span(x64, None, first=0, last=mid + 1, trace=[]), 5)
        out["whole"] = timed(lambda: span(x64, None, trace=[]), 5)
        out["whole_notrace"] = timed(lambda: span(x64, None), 5)

        # decode steps, batch 1, KV cache
        x = x64[:1]
        cache = span.new_cache(1, PROMPT + 2 * steps + 4)
        span(x[:, :PROMPT], cache)
        tok = x[:, PROMPT:PROMPT + 1]
        plain, traced = [], []
        for s in range(steps):
            t = time.perf_counter()
            span(tok, cache)
            plain.append(time.perf_counter() - t)
            t = time.perf_counter()
            span(tok, cache, trace=[])
            traced.append(time.perf_counter() - t)
        out["step"] = statistics.median(plain)
        out["step_traced"] = statistics.median(traced)

        # the receipt work of one step, given the step's n block outputs (1, 1, C)
        outs = []
        span(tok, None, tamper=lambda i, h, run: outs.append(run()) or outs[-1])
        key = bytes(range(1, 33))
        addr = Account.from_key(key).address
        domain = ReceiptDomain(chain_id=31337, court=addr)
        try:
            from node.signing import ReceiptSigner

            signer = ReceiptSigner(key, domain)
            sign = signer.sign
            out["signer"] = "node.signing.ReceiptSigner (coincurve)" if signer._cc is not None \
                else "node.signing.ReceiptSigner (eth-account fallback)"
        except Exception as exc:  # noqa: BLE001
            sign = lambda r: sign_receipt(r, domain, key)  # noqa: E731
            out["signer"] = f"pollen.receipts.sign_receipt (node.signing failed: {type(exc).__name__})"
        h32 = bytes(32)

        def receipt_work():
            sks = torch.stack([sketch(y) for y in outs])
            root = blocks_root(a, sks)
            r = Receipt(server=addr, version_id=1, first_block=a, last_block=b, term=0, kind=KIND_INFERENCE,
                        session_id=h32, step=1, input_hash=h32, output_hash=h32, blocks_root=root,
                        issued_at=1_700_000_000)
            return sign(r)
        receipt_work()
        phases = {"sketch": [], "root": [], "sign": [], "total": []}
        for _ in range(steps):
            t0 = time.perf_counter()
            sks = torch.stack([sketch(y) for y in outs])
            t1 = time.perf_counter()
            root = blocks_root(a, sks)
            t2 = time.perf_counter()
            r = Receipt(server=addr, version_id=1, first_block=a, last_block=b, term=0, kind=KIND_INFERENCE,
                        session_id=h32, step=1, input_hash=h32, output_hash=h32, blocks_root=root,
                        issued_at=1_700_000_000)
            sign(r)
            t3 = time.perf_counter()
            phases["sketch"].append(t1 - t0)
            phases["root"].append(t2 - t1)
            phases["sign"].append(t3 - t2)
            phases["total"].append(t3 - t0)
        for k, v in phases.items():
            out["r_" + k] = statistics.median(v)
        out["eth_sign"] = timed(lambda: sign_receipt(r, domain, key), steps)
    out["sketch_bytes"] = n * SKETCH_DIM * 4
    out["hidden_bytes"] = span.hidden_size * 4
    return out


def nice(v: float) -> float:
    """Round to 2 significant digits."""
    if not math.isfinite(v) or v <= 0:
        return v
    e = math.floor(math.log10(v))
    return round(v, -e + 1)


@click.command()
@click.option("--model", default=".cache/models/smollm2-135m", show_default=True)
@click.option("--spans", default="0:15,15:30", show_default=True, help="spans a:b, comma separated")
@click.option("--tokens", default=64, show_default=True, help="tokens per prompt (>= 64 recommended)")
@click.option("--prompts", default=3, show_default=True, help="prompts served one at a time (honest rows)")
@click.option("--cheat-prompts", default=4, show_default=True, help="prompts each cheat is served on")
@click.option("--batch", default=8, show_default=True, help="batch of prompts for the batch row and cheats")
@click.option("--threads", default=1, show_default=True, help="torch threads (the 2-thread row uses 2)")
@click.option("--steps", default=60, show_default=True, help="decode steps timed for the overhead")
@click.option("--quick", is_flag=True, help="2 prompts, batch 4, 2 cheat prompts, fewer cheat positions")
@click.option("--out", "out_path", default=str(ROOT / "benchmarks/results/judgment.md"), show_default=True)
def main(model, spans, tokens, prompts, cheat_prompts, batch, threads, steps, quick, out_path):
    quiet()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    if quick:
        prompts, batch, cheat_prompts = min(prompts, 2), min(batch, 4), min(cheat_prompts, 2)
    started = time.perf_counter()
    span_list = [tuple(int(v) for v in s.split(":")) for s in spans.split(",")]
    lines: list[str] = []
    emit = lines.append

    ids = tokenize(model, max(batch, prompts, cheat_prompts), tokens)
    with torch.no_grad():
        inputs = spans_inputs(model, ids, span_list)
        honest = {sp: honest_rows(model, *sp, inputs[sp][:batch], prompts, threads) for sp in span_list}
        cheats = {sp: cheat_rows(model, *sp, inputs[sp][:cheat_prompts], quick) for sp in span_list}
        bloom_h, bloom_c = bloom_family(quick, tokens)
    cost = costs(model, *span_list[0], inputs[span_list[0]][:1], steps)
    elapsed = time.perf_counter() - started

    argv = " ".join(shlex.quote(a) for a in sys.argv[1:])
    emit("# Judgment v2 calibration (per-block sketches, per-token metric)\n")
    emit(f"Model `{Path(model).name}`, spans {', '.join(f'[{a}, {b})' for a, b in span_list)}; "
         f"{tokens} tokens of natural English prose per prompt (SmolLM2 tokenizer), server pattern "
         f"= {PROMPT}-token prompt chunk then {tokens - PROMPT} decode steps of 1 token with a KV "
         f"cache; auditor = float32 parallel replay of the committed input. Sketch = {SKETCH_DIM} "
         f"±1 directions per token per block. torch threads = {threads}; run took {elapsed:.0f} s.\n")
    emit("Reproduce:\n\n```bash\n"
         f".venv/bin/python benchmarks/judgment.py {argv}".rstrip() + "\n"
         ".venv/bin/python benchmarks/judgment.py --quick   # smaller, ~3 min on a loaded 2-core box\n```\n")

    # ---- honest
    emit(f"## Honest spread (max over {prompts} prompts, blocks and tokens)\n")
    head = "| comparison | " + " | ".join(f"[{a},{b}) sketch | [{a},{b}) full | [{a},{b}) old metric"
                                          for a, b in span_list) + " |"
    emit(head)
    emit("|---|" + "---:|---:|---:|" * len(span_list))
    H: dict[str, float] = {}  # worst honest sketch error per kind (fp32, bf16, fp16, int8, nf4)
    U: list = []  # honest bf16 / fp16 rows read as "declares fp32, runs cheaper" (min over prompts)
    names = [r[0] for r in honest[span_list[0]]]
    for idx, name in enumerate(names):
        cells = []
        for sp in span_list:
            nm, kind, e = honest[sp][idx]
            if e is None:
                cells += ["FAILED", "FAILED", "FAILED"]
                continue
            s = vmax(e["sk"])
            cells += [f"{fmt(s)} (block {sp[0] + int(e['block'][e['sk'].argmax()])})", fmt(vmax(e["full"])),
                      fmt(vmax(e["old"]))]
            H[kind] = max(H.get(kind, 0.0), s)
            if kind in ("bf16", "fp16"):
                U.append((vmin(e["sk"]), kind, f"declares fp32, runs {kind} (undeclared) [{sp[0]},{sp[1]})"))
        emit(f"| {name} | " + " | ".join(cells) + " |")
    emit("\n(\"sketch\" = what is judged: max per-token error over blocks on the committed sketches, "
         "with the block where it peaks; \"full\" = the same metric on the full block outputs; "
         "\"old metric\" = `relative_error` over the span's flattened final output.)\n")

    # ---- cheats
    C = {"compute": [], "quant": []}
    for sp in span_list:
        a, b = sp
        emit(f"## Cheats on span [{a}, {b}) (fp32 server, KV cache step by step, {cheat_prompts} prompts; "
             "min over prompts, then min / median over the positions tried; positions are local block indexes)\n")
        emit("| cheat | saves compute / changes model | judged, sketch: min | median over positions "
             "| full tensors: min | old metric: min | old metric: median |")
        emit("|---|---|---:|---:|---:|---:|---:|")
        for name, real, per_pos in cheats[sp]:
            if not per_pos:
                emit(f"| {name} | {'yes' if real else 'no'} | FAILED | | | | |")
                continue
            s = summarize_cheat(per_pos)
            emit(f"| {name} | {'yes' if real else 'no'} | {fmt(s['sk_min'])} | {fmt(s['sk_med'])} | "
                 f"{fmt(s['full_min'])} | {fmt(s['old_min'])} | {fmt(s['old_med'])} |")
            if real:
                C["quant" if "undeclared" in name else "compute"].append((s["sk_min"], f"{name} [{a},{b})"))
        emit("")
    emit("The int8 / nf4 rows are the same computation as the honest int8 / nf4 rows above: a cheat "
         "when the version declares fp32, honest when the version declares that quantisation.\n")

    # ---- second family
    emit("## Second family: tiny random-weight BLOOM (hidden 256, 6 blocks, random tokens, 4 prompts)\n")
    emit("| row | judged, sketch | median over positions | full tensors | old metric |")
    emit("|---|---:|---:|---:|---:|")
    for name, e in bloom_h:
        emit(f"| honest: {name} (max) | {fmt(vmax(e['sk']))} | | {fmt(vmax(e['full']))} | {fmt(vmax(e['old']))} |")
        kind = "bf16" if name.startswith("bf16") else "fp32"
        H[kind] = max(H.get(kind, 0.0), vmax(e["sk"]))
        if kind == "bf16":
            U.append((vmin(e["sk"]), kind, "declares fp32, runs bf16 (undeclared) [BLOOM]"))
    for name, per_pos in bloom_c:
        s = summarize_cheat(per_pos)
        emit(f"| cheat: {name} (min) | {fmt(s['sk_min'])} | {fmt(s['sk_med'])} | {fmt(s['full_min'])} | "
             f"{fmt(s['old_min'])} |")
        if name.startswith("skip"):
            C["compute"].append((s["sk_min"], f"{name} [BLOOM]"))
    emit("")

    # ---- tolerance rule
    emit("## Tolerance rule\n")
    scen = []
    for label, kinds in (("F: fp32 only (bf16 / fp16 / int8 / nf4 undeclared = cheat)", {"fp32"}),
                         ("A': fp32 + fp16", {"fp32", "fp16"}),
                         ("A: fp32 + fp16 + bf16 (int8 / nf4 undeclared = cheat)", {"fp32", "fp16", "bf16"}),
                         ("B: every dtype incl. int8 and nf4 (quantisation is not a cheat)",
                          {"fp32", "fp16", "bf16", "int8", "nf4"})):
        h = max(H.get(k, 0.0) for k in kinds)
        cands = C["compute"] + (C["quant"] if "int8" not in kinds else []) \
            + [(v, nm) for v, k, nm in U if k not in kinds]
        c, cname = min(cands)
        t = nice(math.sqrt(h * c)) if h > 0 else c / 3
        below = [nm for v, nm in sorted(cands) if v < 3 * h]
        scen.append((label, h, c, cname, t, below))
        emit(f"- **{label}**: worst honest spread H = {fmt(h)}, smallest compute-saving / model-changing "
             f"cheat C = {fmt(c)} ({cname}); C / H = {c / h:.1f}; T = sqrt(H·C) ≈ {fmt(t)}: "
             f"T / H = {t / h:.1f}, C / T = {c / t:.1f}. Goal C ≥ 3 H: "
             + ("**met**." if c >= 3 * h else f"**missed**; below 3 H: {', '.join(below)}."))
    pick = next((s for s in scen[::-1] if s[2] >= 3 * s[1]), scen[0])  # most permissive that meets it
    nc_noise = {}
    for sp in span_list:
        for name, real, per_pos in cheats[sp]:
            if not real and per_pos:
                v = summarize_cheat(per_pos)["sk_min"]
                nc_noise[name] = min(nc_noise.get(name, math.inf), v)
    caught = [n for n, v in nc_noise.items() if not v <= pick[4]]
    missed = [n for n, v in nc_noise.items() if v <= pick[4]]
    emit(f"\nRecommended (the most permissive scenario meeting C ≥ 3 H): {pick[0].split(':')[0]} with T = {fmt(pick[4])} "
         f"(on chain: {round(pick[4] * 1e6)} in units of 10⁻⁶). Cheats that save no compute, at this T: "
         f"caught = {', '.join(caught) or 'none'}; not caught = {', '.join(missed) or 'none'}"
         + (" (a perturbation that small is within the honest spread's order of magnitude and buys the "
            "cheater nothing in compute)." if missed else ".") + "\n")
    emit(f"RECOMMENDED_TOLERANCE = {pick[4]:g}\n")

    # ---- costs
    a, b = span_list[0]
    n, mid = cost["n"], cost["mid"]
    emit(f"## Costs (span [{a}, {b}), {threads} thread(s), medians)\n")
    emit(f"Audit (one parallel forward of a {tokens}-token, {tokens - PROMPT}-step history, with sketches, median of 5):\n")
    emit("| recompute | seconds |\n|---|---:|")
    emit(f"| one block (block {a + mid}) | {cost['one']:.4f} |")
    emit(f"| blocks [{a}, {a + mid}] ({mid + 1} blocks, up to the named block) | {cost['prefix']:.4f} |")
    emit(f"| whole span [{a}, {b}) ({n} blocks) | {cost['whole']:.4f} |")
    emit(f"| whole span without sketches | {cost['whole_notrace']:.4f} |\n")
    pct = 100 * cost["r_total"] / cost["step"]
    emit(f"Receipt overhead per decode step (batch 1, median of {steps}):\n")
    emit("| work | ms | % of a decode step |\n|---|---:|---:|")
    emit(f"| decode step through {n} blocks, KV cache, no sketches | {cost['step'] * 1e3:.3f} | 100 |")
    for k, label in (("r_sketch", f"{n} block sketches"), ("r_root", "blocks_root (Merkle)"),
                     ("r_sign", f"receipt + signature ({cost['signer']})")):
        emit(f"| {label} | {cost[k] * 1e3:.3f} | {100 * cost[k] / cost['step']:.2f} |")
    emit(f"| **total receipt work** | **{cost['r_total'] * 1e3:.3f}** | **{pct:.2f}** |")
    emit(f"| (for comparison) signature with eth-account `sign_receipt` | {cost['eth_sign'] * 1e3:.3f} | "
         f"{100 * cost['eth_sign'] / cost['step']:.2f} |")
    emit(f"| (in situ) decode step with trace=[] minus without | "
         f"{(cost['step_traced'] - cost['step']) * 1e3:.3f} | "
         f"{100 * (cost['step_traced'] - cost['step']) / cost['step']:.2f} |\n")
    emit(f"Target ≤ 3 %: {'met' if pct <= 3 else 'MISSED'} ({pct:.2f} %).\n")
    emit(f"Sketch bytes per step per token: {n} blocks × {SKETCH_DIM} × 4 B = {cost['sketch_bytes']} B, "
         f"vs the hidden state {cost['hidden_bytes']} B in fp32 ({cost['hidden_bytes'] // 2} B in bf16): "
         f"{cost['sketch_bytes'] / cost['hidden_bytes']:.2f}x the fp32 output "
         f"({SKETCH_DIM * 4} B per block = {SKETCH_DIM * 4 / cost['hidden_bytes']:.1%} of one hidden state).\n")

    text = "\n".join(lines)
    print(text)
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    Path(out_path).write_text(text + "\n")
    print(f"(written to {os.path.relpath(out_path, ROOT)})")


if __name__ == "__main__":
    main()
