"""Loading by what a user knows: `from_pretrained` (and `pollen generate`) given a manifest CID or
an on-chain version pollen://anvil/<id>, on a real anvil with the contracts, a tiny Llama (with a
byte-level tokenizer) published to a store and one `pollen node` serving it. Outputs are
compared with transformers on the original checkpoint; bad names fail with clear errors."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from client import AutoDistributedModelForCausalLM
from client.loading import ModelSourceError
from devstack.procs import ROOT, start_stack
from trusthelp import PARAMS, TOLERANCE

IDS = torch.tensor([[5, 17, 42, 9, 101, 7]])


def byte_tokenizer(folder) -> None:
    """A byte-level BPE without merges (256 ids, inside the tiny vocab), saved as tokenizer.json."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    tok = Tokenizer(models.BPE(vocab={ch: i for i, ch in enumerate(sorted(alphabet))}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.save(str(folder / "tokenizer.json"))


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    from pollen.model.tiny import make_checkpoint

    work = tmp_path_factory.mktemp("load-by-version")
    ckpt = make_checkpoint("llama", work / "tiny", seed=5)
    byte_tokenizer(ckpt)
    s = start_stack(work, ckpt, PARAMS, TOLERANCE)
    try:
        ready = s.daemon("d1", 1, "--blocks", "0:6").start().wait_event("ready", 150)
        s.address = f"127.0.0.1:{ready['port']}"
        s.checkpoint = ckpt
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def hf(stack):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(stack.checkpoint), dtype=torch.float32).eval()


def _open(stack, name, tmp_path, **kw):
    return AutoDistributedModelForCausalLM.from_pretrained(name, store=stack.store_path, cache_dir=tmp_path / "cache",
                                                           **kw)


def test_by_onchain_version_uses_the_registry_and_matches_transformers(stack, hf, tmp_path):
    model = _open(stack, f"pollen://anvil/{stack.version_id}", tmp_path, deployment=stack.deployment_path,
                  local_blocks=(1, 0))
    try:
        out = model.generate(IDS, max_new_tokens=5)
        assert [p.address for p in model.swarm.membership.peers()] == [stack.address]
        assert model.verifier.terms is not None and model.tokenizer is not None
    finally:
        model.close()
    assert out.tolist() == hf.generate(IDS, max_new_tokens=5, do_sample=False).tolist()
    folder = tmp_path / "cache" / "versions" / stack.manifest_cid
    assert {"client.safetensors", "tokenizer.json", "blocks/block_00000.safetensors"} <= \
        {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
    assert not (folder / "blocks" / "block_00001.safetensors").exists()  # only what the client runs


def test_by_manifest_cid_from_the_store(stack, hf, tmp_path):
    for name in (stack.manifest_cid, f"ipfs://{stack.manifest_cid}"):
        model = _open(stack, name, tmp_path, initial_peers=[stack.address],  # receipts name the deployment's court
                      court=stack.deployment.contracts["DisputeCourt"])
        try:
            assert model(IDS).logits.shape == (1, IDS.shape[1], 320)
            torch.testing.assert_close(model(IDS).logits, hf(IDS).logits, atol=1e-4, rtol=1e-4)
        finally:
            model.close()


def test_bad_names_fail_clearly(stack, tmp_path):
    from pollen.store import cid_of_bytes

    with pytest.raises(ModelSourceError, match="version 99 on anvil"):
        _open(stack, "pollen://anvil/99", tmp_path, deployment=stack.deployment_path)
    with pytest.raises(ModelSourceError, match="for network 'anvil'"):
        _open(stack, "pollen://gnosis/1", tmp_path, deployment=stack.deployment_path)
    with pytest.raises(ModelSourceError, match="pollen://<network>/<version-id>"):
        _open(stack, "pollen://anvil/first", tmp_path)
    with pytest.raises(ModelSourceError, match="is not a valid CID"):
        _open(stack, "ipfs://bafynotacid", tmp_path)
    with pytest.raises(ModelSourceError, match="not a folder, a manifest CID"):
        _open(stack, str(tmp_path / "no-such-dir"), tmp_path)
    absent = cid_of_bytes(b"no manifest here")
    with pytest.raises(ModelSourceError, match=f"manifest {absent}"):
        _open(stack, absent, tmp_path, initial_peers=[stack.address])


def test_cli_generate_by_network_and_version(stack, hf, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-m", "pollen.cli", "generate", "--network", "anvil", "--version", str(stack.version_id),
            "--deployment", str(stack.deployment_path), "--store", str(stack.store_path),
            "--cache-dir", str(tmp_path / "cache"), "--local-blocks", "1", "--prompt", "Hello", "--raw",
            "--max-new-tokens", "6"]
    res = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(stack.checkpoint))
    ids = tok("Hello", return_tensors="pt").input_ids
    want = tok.decode(hf.generate(ids, max_new_tokens=6, do_sample=False)[0, ids.shape[1]:],
                      skip_special_tokens=True)
    assert res.stdout.rstrip("\n") == want and want
    bad = subprocess.run(args[:7] + ["999"] + args[8:], capture_output=True, text=True, timeout=300, cwd=ROOT,
                         env=env)
    assert bad.returncode != 0 and "version 999 on anvil" in bad.stderr
