"""--device / --dtype: every path runs on the CPU here; the CUDA cases run unchanged where a GPU
is visible (skipped otherwise)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import procs
from procs import ROOT

from client import AutoDistributedModelForCausalLM
from pollen.devices import DeviceError, resolve_device, resolve_dtype
from pollen.model import load_span

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible")
DEVICES = ["cpu", pytest.param("cuda", marks=CUDA)]


def test_specs_resolve_or_say_what_is_missing():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_dtype("auto", torch.device("cpu")) == "float32"
    assert resolve_dtype("bfloat16", torch.device("cpu")) == "bfloat16"
    with pytest.raises(DeviceError, match="expected auto, cpu, cuda"):
        resolve_device("tpu")
    with pytest.raises(DeviceError, match="expected auto or one of"):
        resolve_dtype("int4", torch.device("cpu"))
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="no CUDA GPU is visible"):
            resolve_device("cuda:0")


@pytest.mark.parametrize("device", DEVICES)
def test_span_and_kv_cache_live_on_the_device(tiny_llama, device):
    ref = load_span(tiny_llama, 0, 6)
    span = load_span(tiny_llama, 0, 6, device=device)
    x = torch.randn(2, 5, span.hidden_size, generator=torch.Generator().manual_seed(0))
    cache = span.new_cache(2, 8)
    assert cache.k.device.type == device and next(span.parameters()).device.type == device
    with torch.no_grad():
        got = span(x.to(device), cache).cpu()
        want = ref(x, ref.new_cache(2, 8))
    assert (got - want).abs().max().item() < 1e-4


@pytest.mark.parametrize("device", DEVICES)
def test_a_server_on_the_device_matches_transformers(tiny_llama, hf_models, tmp_path, device):
    servers = procs.start(tiny_llama, [(0, 6)], "--device", device, "--dtype", "auto" if device == "cpu" else "float32",
                          log_dir=tmp_path)
    try:
        model = AutoDistributedModelForCausalLM.from_pretrained(tiny_llama, initial_peers=[servers[0].address])
        ids = torch.tensor([[5, 17, 42, 9, 101, 7]])
        try:
            out = model.generate(ids, max_new_tokens=6)
        finally:
            model.close()
        assert out.tolist() == hf_models(tiny_llama).generate(ids, max_new_tokens=6, do_sample=False).tolist()
    finally:
        procs.stop_all(servers)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible: nothing to refuse")
def test_asking_for_a_gpu_that_is_not_there_is_a_clear_error(tiny_llama):
    out = subprocess.run([sys.executable, "-m", "pollen.cli", "serve", "--model", str(tiny_llama), "--blocks", "0:6",
                          "--device", "cuda"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "no CUDA GPU is visible" in out.stderr, out.stderr[-2000:]


@pytest.mark.parametrize("device", DEVICES)
def test_the_clients_parts_on_the_device_match_transformers(swarm_llama, tiny_llama, hf_models, device):
    model = AutoDistributedModelForCausalLM.from_pretrained(tiny_llama, initial_peers=swarm_llama[0][2], device=device)
    ids = torch.tensor([[5, 17, 42, 9, 101, 7]])
    try:
        assert model.device.type == device
        out = model.generate(ids, max_new_tokens=6, repetition_penalty=1.2)
        with torch.no_grad():
            result = model(ids, labels=ids)
    finally:
        model.close()
    hf = hf_models(tiny_llama)
    assert out.tolist() == hf.generate(ids, max_new_tokens=6, do_sample=False, repetition_penalty=1.2).tolist()
    assert result.logits.device.type == device
    torch.testing.assert_close(result.loss.cpu(), hf(ids, labels=ids).loss, atol=1e-4, rtol=1e-4)


def test_client_device_errors_name_the_problem(swarm_llama, tiny_llama):
    from client.errors import ClientError

    peers = swarm_llama[0][2]
    with pytest.raises(ClientError, match="expected auto, cpu, cuda"):
        AutoDistributedModelForCausalLM.from_pretrained(tiny_llama, initial_peers=peers, device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ClientError, match="no CUDA GPU is visible"):
            AutoDistributedModelForCausalLM.from_pretrained(tiny_llama, initial_peers=peers, device="cuda")
    else:
        with pytest.raises(ClientError, match="CPU only so far"):
            AutoDistributedModelForCausalLM.from_pretrained(tiny_llama, initial_peers=peers, device="cuda",
                                                            local_blocks=1)
