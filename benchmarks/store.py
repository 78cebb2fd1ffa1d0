"""Benchmark the content store: publish and fetch throughput for both backends, and the time
from a manifest CID to a server's shards being ready (cold cache, then warm restart).

    .venv/bin/python benchmarks/store.py            # or: make bench-store

Uses SmolLM2-135M from .cache/models/smollm2-135m when it has been prepared (mk/swarm.mk);
otherwise builds a random-weight Llama checkpoint with SmolLM2's shapes (same size, ~538 MB)
and says so. The IPFS backend is a real js-ipfs node started here on a free loopback port and
stopped by PID (or any Kubo RPC node given with --kubo URL).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pollen.publish import publish_checkpoint, register_version  # noqa: E402
from pollen.shards import fetch_span, fetch_version_span, split_checkpoint  # noqa: E402
from pollen.store import KuboStore, LocalStore  # noqa: E402
from pollen.store.jsipfs import start_node  # noqa: E402

SMOLLM2 = ROOT / ".cache" / "models" / "smollm2-135m"
SMOLLM2_SHAPES = dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                      num_attention_heads=9, num_key_value_heads=3, vocab_size=49152,
                      tie_word_embeddings=True, head_dim=64)


def checkpoint(work: Path) -> tuple[Path, str]:
    if (SMOLLM2 / "model.safetensors").is_file():
        return SMOLLM2, "SmolLM2-135M (fp32, real weights from .cache/models)"
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    out = work / "synthetic-smollm2-shapes"
    LlamaForCausalLM(LlamaConfig(**SMOLLM2_SHAPES)).save_pretrained(str(out))
    return out, "synthetic Llama with SmolLM2-135M's shapes (random weights; SmolLM2 not prepared)"


def timed(call):
    start = time.perf_counter()
    result = call()
    return result, time.perf_counter() - start


def run_backend(store, ckpt: Path, work: Path, repeat: int, chain=None) -> dict:
    published, publish_s = timed(lambda: publish_checkpoint(ckpt, store, name="bench"))
    m = published.manifest
    by_version = None
    if chain is not None:
        version_id = register_version(chain, chain.create_model("bench"), published)
        _, by_version = timed(lambda: fetch_version_span(store, chain, version_id, 0, m.num_blocks // 2,
                                                         work / "by-version"))
    shard_bytes = sum(b.size for b in m.blocks) + m.client.size
    half = m.num_blocks // 2
    cold_all, cold_half, warm_half = [], [], []
    for i in range(repeat):
        _, t = timed(lambda: fetch_span(store, published.manifest_cid, 0, m.num_blocks, work / f"all{i}"))
        cold_all.append(t)
        _, t = timed(lambda: fetch_span(store, published.manifest_cid, 0, half, work / f"half{i}"))
        cold_half.append(t)
        _, t = timed(lambda: fetch_span(store, published.manifest_cid, 0, half, work / f"half{i}"))
        warm_half.append(t)
    blocks_bytes = sum(b.size for b in m.blocks)
    med = statistics.median
    return {"cid": published.manifest_cid, "bytes": published.uploaded_bytes,
            "publish_s": publish_s, "publish_MBps": published.uploaded_bytes / publish_s / 1e6,
            "fetch_MBps": blocks_bytes / med(cold_all) / 1e6, "half": half, "n": m.num_blocks,
            "ready_cold_s": med(cold_half), "ready_warm_s": med(warm_half),
            "shard_bytes": shard_bytes, "by_version_s": by_version}


def table(rows: dict[str, dict]) -> str:
    any_row = next(iter(rows.values()))
    lines = ["| backend | published MB | publish (split + add) | publish MB/s | fetch all blocks MB/s "
             f"| manifest CID → blocks [0, {any_row['half']}) ready, cold | same, warm restart |",
             "|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['bytes'] / 1e6:.1f} | {r['publish_s']:.2f} s | {r['publish_MBps']:.0f} "
                     f"| {r['fetch_MBps']:.0f} | {r['ready_cold_s']:.2f} s | {r['ready_warm_s']:.2f} s |")
    for name, r in rows.items():
        if r["by_version_s"] is not None:
            lines.append(f"\nOn chain too ({name}): version id → ModelVersionRegistry lookup on anvil → "
                         f"blocks [0, {r['half']}) ready, cold: {r['by_version_s']:.2f} s")
    return "\n".join(lines)


def start_chain():
    """anvil + the deployed contracts, or None (with the reason) when they are not available."""
    try:
        from devstack.anvil import dev_keys, start_anvil
        from pollen.chain import Chain
        from pollen.deploy import Parameters, deploy_all

        anvil = start_anvil()
        deployment = deploy_all(anvil.rpc, params=Parameters(), log=lambda *_: None)
        return anvil, Chain.connect(deployment, private_key=dev_keys(1)[0])
    except Exception as exc:  # the chain row is optional: report why it is missing
        print(f"(no on-chain measurement: {exc})")
        return None, None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kubo", help="use this Kubo RPC URL instead of starting a js-ipfs node")
    ap.add_argument("--repeat", type=int, default=3, help="fetch repetitions (median reported)")
    ap.add_argument("--no-chain", dest="chain", action="store_false",
                    help="skip the version-id row (anvil + ModelVersionRegistry)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pollen-bench-store-") as tmp:
        work = Path(tmp)
        ckpt, what = checkpoint(work)
        print(f"checkpoint: {what}", flush=True)
        split, split_s = timed(lambda: split_checkpoint(ckpt, work / "split"))
        print(f"split into {len(split.blocks)} block shards + client parts: {split_s:.2f} s "
              "(included in every publish time below)", flush=True)
        rows = {"embedded (LocalStore)": run_backend(LocalStore(work / "local"), ckpt, work / "l", args.repeat)}
        node = None if args.kubo else start_node(work / "ipfs-repo")
        anvil, chain = start_chain() if args.chain else (None, None)
        try:
            url = args.kubo or node.api_url
            with KuboStore(url, timeout=300) as kubo:
                agent = kubo.describe()["agent"]
                rows[f"IPFS node ({agent}, Kubo RPC)"] = run_backend(kubo, ckpt, work / "k", args.repeat, chain)
        finally:
            for proc in (node, anvil):
                if proc is not None:
                    proc.stop()
    cids = {r["cid"] for r in rows.values()}
    print(f"manifest CID (identical on both backends: {len(cids) == 1}): {cids.pop()}")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
