"""Helpers of the store tests (a uniquely named module: conftest names clash across folders)."""

from __future__ import annotations

import os

C = 256 * 1024
# CIDv1 raw-leaves CIDs the REAL js-ipfs node gave `pattern(size)` (see test_cid.py).
GOLDEN = {
    0: "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
    1: "bafkreiaij7wqrolyv5gx2glkordkq22yacpgg23bdwyweenwlknk37zjyu",
    C - 1: "bafkreibqltw5zu46ltfuhmc3ao5sxt6qzm35r7mnyhzrn7ou7mwkyh5inm",
    C: "bafkreid3ofkvqtwnytdm4cxy3aidkhcqq6i2nv5w3nvyvfwmkuonkyqeai",
    C + 1: "bafybeigrosvbbw24eykfaduzjk4rkdmyo7khbhw2ybhqz3g23oa5nsc4cm",
    2 * C: "bafybeico264qlumga7qxkic4m37e3nqpieahrfni6l3jfvmkdhx6jxuhgm",
    174 * C: "bafybeianbozj5ck6khnl6h7uyn4aqb7jg7im4b2o5njwn3v27geb35gfaa",
    174 * C + 1: "bafybeidvj3j26q7akdsouiav6qbnojd5jmzmcd7wkboreingl3guktmi7e",
    175 * C + 7: "bafybeic7dbwdrfyzkiprpirvlntcev2wbnrfze7pbdj6xoqype4lmcrjsq",
}


def pattern(size: int) -> bytes:
    """Deterministic test content: byte i is (7*i + 3) mod 251 (period 251, so chunks differ)."""
    period = bytes((7 * i + 3) % 251 for i in range(251))
    return (period * (size // 251 + 1))[:size]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def make_checkpoint(family: str, folder, seed: int, max_shard_size: str | None = None):
    """A random-weight transformers checkpoint (+ a word-level tokenizer.json) in `folder`."""
    import torch
    from tokenizers import Tokenizer, models
    from transformers import BloomConfig, BloomForCausalLM, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    if family == "llama":
        model = LlamaForCausalLM(LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=5,
                                             num_attention_heads=4, num_key_value_heads=2, vocab_size=256))
    else:
        model = BloomForCausalLM(BloomConfig(hidden_size=64, n_head=4, n_layer=4, vocab_size=256))
    kwargs = {"max_shard_size": max_shard_size} if max_shard_size else {}
    model.save_pretrained(str(folder), **kwargs)
    vocab = {"<unk>": 0, **{f"w{i}": i + 1 for i in range(255)}}
    Tokenizer(models.WordLevel(vocab, unk_token="<unk>")).save(str(folder / "tokenizer.json"))
    return folder
