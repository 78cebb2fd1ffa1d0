"""Integration: real server processes on loopback; the client must match plain transformers."""

from __future__ import annotations

import threading

import pytest
import torch

from client import AutoDistributedModelForCausalLM, MissingBlocksError
from pollen.receipts import ReceiptDomain, recover_signer

FAMILIES = ["llama", "bloom", "smollm2"]
PROMPT = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"


def _setup(request, family):
    swarm = request.getfixturevalue(f"swarm_{family}")
    path = request.getfixturevalue({"llama": "tiny_llama", "bloom": "tiny_bloom", "smollm2": "smollm2"}[family])
    return swarm, path


def _prompt(model, family):
    if family == "smollm2":
        return model.tokenizer(PROMPT, return_tensors="pt").input_ids
    return torch.randint(0, 320, (2, 7), generator=torch.Generator().manual_seed(5))


@pytest.mark.parametrize("n_servers", [1, 2, 3])
@pytest.mark.parametrize("family", FAMILIES)
def test_greedy_generation_matches_transformers(request, hf_models, family, n_servers):
    (routes, by), path = _setup(request, family)
    model = AutoDistributedModelForCausalLM.from_pretrained(path, initial_peers=routes[n_servers])
    try:
        ids = _prompt(model, family)
        new = 12 if family == "smollm2" else 16
        with model.inference_session(max_length=ids.shape[1] + new, batch_size=ids.shape[0]) as sess:
            out = model.generate(ids, max_new_tokens=new, session=sess)
            assert len(sess.route) == n_servers
            steps = out.shape[1] - ids.shape[1]
            assert len(sess.receipts) == n_servers * steps  # one verified receipt per hop and step
        ref = hf_models(path).generate(ids, max_new_tokens=new, do_sample=False)
        assert out.tolist() == ref.tolist()
        assert len(set(out[0, ids.shape[1]:].tolist())) > 2  # not a degenerate constant output
    finally:
        model.close()


@pytest.mark.parametrize("family", FAMILIES)
def test_parallel_forward_logits_within_1e4(request, hf_models, family):
    (routes, _), path = _setup(request, family)
    model = AutoDistributedModelForCausalLM.from_pretrained(path, initial_peers=routes[3])
    try:
        ids = _prompt(model, family)
        with torch.no_grad():
            got = model(ids).logits
            ref = hf_models(path)(ids).logits
        assert (got - ref).abs().max().item() < 1e-4
    finally:
        model.close()


@pytest.mark.parametrize("family", ["llama", "bloom"])
def test_gradients_match_local_autograd(request, hf_models, family):
    (routes, _), path = _setup(request, family)
    model = AutoDistributedModelForCausalLM.from_pretrained(path, initial_peers=routes[3])
    try:
        ids = torch.randint(0, 320, (2, 9), generator=torch.Generator().manual_seed(7))
        # grads w.r.t. the token embeddings (before BLOOM's embedding LayerNorm, which HF applies
        # inside the model and our client applies locally)
        table = model.parts.embed_tokens if family == "llama" else model.parts.word_embeddings
        ours = table(ids).detach().requires_grad_(True)
        h = ours if family == "llama" else model.parts.word_embeddings_layernorm(ours)
        model(inputs_embeds=h).logits.log_softmax(-1)[..., :50].sum().backward()
        theirs = table(ids).detach().requires_grad_(True)
        hf_models(path)(inputs_embeds=theirs).logits.log_softmax(-1)[..., :50].sum().backward()
        assert ours.grad.abs().sum() > 0
        assert torch.allclose(ours.grad, theirs.grad, atol=1e-4, rtol=1e-3), (ours.grad - theirs.grad).abs().max()
    finally:
        model.close()


def test_receipts_verify_with_canonical_recovery(swarm_llama, tiny_llama):
    routes, by = swarm_llama
    model = AutoDistributedModelForCausalLM.from_pretrained(tiny_llama, initial_peers=routes[2])
    try:
        ids = torch.randint(0, 320, (1, 5), generator=torch.Generator().manual_seed(1))
        with model.inference_session(max_length=16) as sess:
            model.generate(ids, max_new_tokens=4, session=sess)
            signers = {s.address: s.signer for s in by.values()}
            domain = ReceiptDomain(31337, "0x000000000000000000000000000000000000c0de")
            steps_by_server = {}
            for rec in sess.receipts:
                assert recover_signer(rec.receipt, domain, rec.signature) == signers[rec.address]
                steps_by_server.setdefault(rec.address, []).append(rec.receipt.step)
            assert all(steps == [0, 1, 2, 3] for steps in steps_by_server.values())
    finally:
        model.close()


def test_session_continuation_equals_one_shot(swarm_llama, tiny_llama):
    routes, _ = swarm_llama
    model = AutoDistributedModelForCausalLM.from_pretrained(tiny_llama, initial_peers=routes[2])
    try:
        ids = torch.randint(0, 320, (1, 6), generator=torch.Generator().manual_seed(2))
        one_shot = model.generate(ids, max_new_tokens=10)
        with model.inference_session(max_length=32) as sess:
            first = model.generate(ids, max_new_tokens=4, session=sess)
            rest = model.generate(torch.empty(1, 0, dtype=torch.long), max_new_tokens=6, session=sess)
        assert torch.cat([first, rest], dim=1).tolist() == one_shot.tolist()
    finally:
        model.close()


def test_four_concurrent_sessions_all_correct(swarm_llama, tiny_llama, hf_models):
    routes, _ = swarm_llama
    model = AutoDistributedModelForCausalLM.from_pretrained(tiny_llama, initial_peers=routes[2])
    prompts = [torch.randint(0, 320, (1, 5 + i), generator=torch.Generator().manual_seed(10 + i))
               for i in range(4)]
    results, errors = {}, []

    def run(i):
        try:
            results[i] = model.generate(prompts[i], max_new_tokens=12)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors
        for i, p in enumerate(prompts):
            ref = hf_models(tiny_llama).generate(p, max_new_tokens=12, do_sample=False)
            assert results[i].tolist() == ref.tolist()
    finally:
        model.close()


def test_incomplete_swarm_names_missing_blocks(swarm_llama, tiny_llama):
    routes, by = swarm_llama
    peers = [by["head"].address, by["last"].address, "127.0.0.1:1"]  # [0,2) + [4,6) + a dead port
    model = AutoDistributedModelForCausalLM.from_pretrained(tiny_llama, initial_peers=peers)
    try:
        with pytest.raises(MissingBlocksError, match=r"blocks \[2, 4\) of 6"):
            model.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=2)
    finally:
        model.close()


def test_compressed_wire_close_to_exact(swarm_smollm2, smollm2, hf_models):
    routes, _ = swarm_smollm2
    exact = AutoDistributedModelForCausalLM.from_pretrained(smollm2, initial_peers=routes[2])
    packed = AutoDistributedModelForCausalLM.from_pretrained(smollm2, initial_peers=routes[2], compress=True)
    try:
        ids = exact.tokenizer(PROMPT, return_tensors="pt").input_ids
        with torch.no_grad():
            a, b = exact(ids).logits, packed(ids).logits
        rel = ((a - b).norm() / a.norm()).item()
        assert 0 < rel < 0.05  # compressed, so not bit-exact, but close
        assert (a.argmax(-1) == b.argmax(-1)).float().mean() > 0.9
    finally:
        exact.close()
        packed.close()


def test_bf16_and_int8_servers_in_one_route(smollm2, hf_models, tmp_path):
    import procs

    bf16 = procs.start(smollm2, [(0, 15)], "--dtype", "bfloat16", log_dir=tmp_path)
    int8 = procs.start(smollm2, [(15, 30)], "--quant", "int8", log_dir=tmp_path)
    try:
        mixed = AutoDistributedModelForCausalLM.from_pretrained(smollm2, initial_peers=[bf16[0].address,
                                                                                     int8[0].address])
        mixed.swarm.refresh()
        infos = {v.info.start: (v.info.dtype, v.info.quantization) for v in mixed.swarm.views.values()}
        assert infos == {0: ("bfloat16", "none"), 15: ("float32", "int8")}
        ids = mixed.tokenizer(PROMPT, return_tensors="pt").input_ids
        with torch.no_grad():  # against fp32 transformers (what an fp32 route gives, tested above)
            a, b = hf_models(smollm2)(ids).logits, mixed(ids).logits
        assert ((a - b).norm() / a.norm()).item() < 0.1
        assert (a.argmax(-1) == b.argmax(-1)).float().mean() > 0.8
        text = mixed.tokenizer.decode(mixed.generate(ids, max_new_tokens=8)[0, ids.shape[1]:])
        assert "Paris" in text
        mixed.close()
    finally:
        procs.stop_all(bf16 + int8)


def test_generation_options(swarm_smollm2, smollm2, hf_models):
    routes, _ = swarm_smollm2
    model = AutoDistributedModelForCausalLM.from_pretrained(smollm2, initial_peers=routes[2])
    hf = hf_models(smollm2)
    try:
        ids = model.tokenizer(PROMPT, return_tensors="pt").input_ids
        # repetition penalty + min_new_tokens through transformers' own processors: same as HF
        got = model.generate(ids, max_new_tokens=10, repetition_penalty=1.3, min_new_tokens=10)
        want = hf.generate(ids, max_new_tokens=10, repetition_penalty=1.3, min_new_tokens=10, do_sample=False)
        assert got.tolist() == want.tolist()
        # stop strings end generation early, at a prefix of the unconstrained greedy output
        full = hf.generate(ids, max_new_tokens=24, do_sample=False)
        stopped = model.generate(ids, max_new_tokens=24, stop_strings=["Paris"])
        assert stopped.shape[1] < full.shape[1]
        assert stopped.tolist()[0] == full.tolist()[0][:stopped.shape[1]]
        assert "Paris" in model.tokenizer.decode(stopped[0, ids.shape[1]:])
        # sampling is reproducible with a seeded generator
        runs = [model.generate(ids, max_new_tokens=8, do_sample=True, temperature=0.9, top_k=20, top_p=0.95,
                               generator=torch.Generator().manual_seed(s)).tolist() for s in (1, 1)]
        assert runs[0] == runs[1]
    finally:
        model.close()
