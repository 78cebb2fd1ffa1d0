"""The `pollen` CLI as a user runs it: separate client process against real servers."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


from procs import ROOT


def run_cli(*args, stdin=None, timeout=180):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "pollen.cli", *args], input=stdin, capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT, env=env)


def hf_reply(hf, tok, messages, new):
    ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                  return_dict=True)["input_ids"]
    out = hf.generate(ids, max_new_tokens=new, do_sample=False)
    return tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


def test_generate_prints_greedy_text(swarm_smollm2, smollm2, hf_models):
    routes, _ = swarm_smollm2
    res = run_cli("generate", "--model", str(smollm2), "--peers", ",".join(routes[2]),
                  "--prompt", "What is the capital of France?", "--chat-template", "--max-new-tokens", "10")
    assert res.returncode == 0, res.stderr[-2000:]
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(smollm2))
    want = hf_reply(hf_models(smollm2), tok, [{"role": "user", "content": "What is the capital of France?"}], 10)
    assert res.stdout.strip() == want.strip() and len(want.strip()) > 5


def test_chat_two_turns(swarm_smollm2, smollm2, hf_models):
    routes, _ = swarm_smollm2
    res = run_cli("chat", "--model", str(smollm2), "--peers", ",".join(routes[1]), "--max-new-tokens", "8",
                  stdin="Hi! Who are you?\nName a color.\n")
    assert res.returncode == 0, res.stderr[-2000:]
    replies = [part.split("\n")[0].strip() for part in res.stdout.split("bot> ")[1:]]
    assert len(replies) == 2 and all(replies)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(smollm2))
    first = hf_reply(hf_models(smollm2), tok, [{"role": "user", "content": "Hi! Who are you?"}], 8)
    assert replies[0] == first.strip()


def test_missing_blocks_is_a_clear_cli_error(swarm_smollm2, smollm2):
    _, by = swarm_smollm2
    res = run_cli("generate", "--model", str(smollm2), "--peers", by["head"].address, "--prompt", "hi",
                  "--max-new-tokens", "2")
    assert res.returncode != 0
    assert "no reachable server covers blocks [10, 30) of 30" in res.stderr


def test_serve_rejects_bad_span(smollm2):
    res = run_cli("serve", "--model", str(smollm2), "--blocks", "20:40", timeout=120)
    assert res.returncode != 0 and "outside the model's 30 blocks" in res.stderr


def test_serve_auto_picks_the_uncovered_span(swarm_llama, tiny_llama, tmp_path):
    import procs

    _, by = swarm_llama
    peers = f"{by['head'].address},{by['mid'].address},127.0.0.1:1"  # [0,2) + [2,4) + unreachable
    server = procs.spawn(tiny_llama, "auto", "--span-length", "2", "--peers", peers, log_dir=tmp_path)
    try:
        procs.wait_ready([server])
        assert server.blocks == (4, 6)
    finally:
        procs.stop_all([server])


def test_signer_key_comes_from_a_file_or_env_never_argv(tmp_path, monkeypatch):
    from node.cli import _signer_key
    from node.errors import ConfigError

    key = "0x" + "11" * 32
    (tmp_path / "hot.key").write_text(key + "\n")
    assert _signer_key(str(tmp_path / "hot.key")) == key
    monkeypatch.setenv("POLLEN_SIGNER_KEY", "0x" + "22" * 32)
    assert _signer_key("") == "0x" + "22" * 32
    with pytest.raises(ConfigError, match="--signer-key-file .*missing.key"):
        _signer_key(str(tmp_path / "missing.key"))
