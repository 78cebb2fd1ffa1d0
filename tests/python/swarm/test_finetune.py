"""Fine-tuning through real `pollen serve` processes: prompt tuning, classification head, .loss,
save/load in the peft layout, failover mid-training. Tolerance vs local autograd: 1e-4 (fp32)."""

from __future__ import annotations

import json

import pytest
import torch

import procs
from client import AutoDistributedModelForCausalLM
from client.model import AutoDistributedModelForSequenceClassification
from client.tuning import TuningError, causal_lm_loss
from pollen.model import load_client, load_span

TOL = 1e-4
NOWHERE = ["127.0.0.1:9"]  # loading / saving adapters contacts no server


@pytest.fixture(scope="module")
def redundant(tiny_llama, tmp_path_factory):
    """Two servers per half: [0, 3) x2 and [3, 6) x2, so a killed one can be routed around."""
    servers = procs.start(tiny_llama, [(0, 3), (0, 3), (3, 6), (3, 6)], log_dir=tmp_path_factory.mktemp("ft"))
    yield servers
    procs.stop_all(servers)


def _peers(servers):
    return [s.address for s in servers if s.alive()]


def _batch(seed=0, b=3, t=7):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 320, (b, t), generator=g)
    mask = torch.ones(b, t, dtype=torch.long)
    mask[0, -2:] = 0  # right padding on one row
    labels = ids.masked_fill(mask == 0, -100)
    return ids, mask, labels


def _local(path, prompts, ids, score=None, mask=None):
    """Same weights in one process: (logits, prompts leaf[, score leaf])."""
    _, _, parts = load_client(path)
    span = load_span(path, 0, 6)
    p = prompts.detach().clone().requires_grad_(True)
    h = torch.cat([p[None].expand(ids.shape[0], -1, -1), parts.embed(ids)], 1)
    h = span(h)[:, p.shape[0]:]
    if score is None:
        return parts.head(h), p, None
    w = score.detach().clone().requires_grad_(True)
    idx = (torch.arange(ids.shape[1]) * mask).argmax(-1)
    return parts.norm(h[torch.arange(ids.shape[0]), idx]) @ w.T, p, w


def test_prompt_tuning_grads_equal_local_autograd(swarm_llama, tiny_llama):
    routes, _ = swarm_llama
    model = AutoDistributedModelForCausalLM.from_pretrained(tiny_llama, initial_peers=routes[2],
                                                            tuning_mode="ptune", pre_seq_len=4)
    try:
        assert [p.shape for p in model.trainable_parameters()] == [(4, 64)]
        ids, mask, labels = _batch()
        out = model(ids, attention_mask=mask, labels=labels)
        out.loss.backward()
        assert {(h.start, h.end) for h in model.swarm.route()} == {(0, 2), (2, 6)}
        logits, p, _ = _local(tiny_llama, model.prompts.weight, ids)
        loss = causal_lm_loss(logits, labels)
        loss.backward()
        assert out.logits.shape == (3, 7, 320)
        assert (out.logits - logits).abs().max() < TOL
        assert abs(out.loss.item() - loss.item()) < TOL
        assert (model.prompts.weight.grad - p.grad).abs().max() < TOL * max(1.0, p.grad.abs().max())
        assert all(q.grad is None for q in model.parts.parameters())  # embeddings / head frozen
    finally:
        model.close()


def test_classification_grads_equal_local_autograd(swarm_llama, tiny_llama):
    routes, _ = swarm_llama
    model = AutoDistributedModelForSequenceClassification.from_pretrained(
        tiny_llama, initial_peers=routes[2], tuning_mode="ptune", pre_seq_len=3, num_labels=2)
    try:
        ids, mask, _ = _batch(1)
        y = torch.tensor([0, 1, 1])
        out = model(ids, attention_mask=mask, labels=y)
        out.loss.backward()
        logits, p, w = _local(tiny_llama, model.prompts.weight, ids, model.score.weight, mask)
        torch.nn.functional.cross_entropy(logits, y).backward()
        assert out.logits.shape == (3, 2) and (out.logits - logits).abs().max() < TOL
        assert (model.prompts.weight.grad - p.grad).abs().max() < TOL
        assert (model.score.weight.grad - w.grad).abs().max() < TOL
    finally:
        model.close()


def _copy_task(n=8, seed=0):
    """Each row: 4 random tokens, then the same 4 again; loss only on the copy."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(0, 320, (n, 4), generator=g)
    ids = torch.cat([a, a], 1)
    labels = ids.clone()
    labels[:, :4] = -100
    return ids, labels


def test_training_loop_loss_falls(swarm_llama, tiny_llama):
    routes, _ = swarm_llama
    model = AutoDistributedModelForCausalLM.from_pretrained(tiny_llama, initial_peers=routes[2],
                                                            tuning_mode="ptune", pre_seq_len=6)
    try:
        opt = torch.optim.Adam(model.trainable_parameters(), lr=0.05)
        ids, labels = _copy_task()
        losses = []
        for _ in range(30):
            opt.zero_grad()
            loss = model(ids, labels=labels).loss
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert losses[-1] < 0.8 * losses[0], losses
    finally:
        model.close()


def test_kill_server_mid_training_fails_over_with_exact_grads(redundant, tiny_llama):
    by = {s.address: s for s in redundant}
    model = AutoDistributedModelForCausalLM.from_pretrained(tiny_llama, initial_peers=list(by),
                                                            tuning_mode="ptune", pre_seq_len=4)
    try:
        opt = torch.optim.SGD(model.trainable_parameters(), lr=0.1)
        ids, mask, labels = _batch(2)
        for step in range(3):
            opt.zero_grad()
            out = model(ids, attention_mask=mask, labels=labels)
            if step == 1:  # between forward and backward: the backward must re-route
                killed = model.runner.receipts[-1].address  # the tail hop just used
                by[killed].kill9()
            out.loss.backward()
            logits, p, _ = _local(tiny_llama, model.prompts.weight, ids)
            causal_lm_loss(logits, labels).backward()
            assert (model.prompts.weight.grad - p.grad).abs().max() < TOL, step
            opt.step()
        assert sum(s.alive() for s in redundant) == 3  # steps 1 (its backward) and 2 ran without it
    finally:
        model.close()


def test_generate_with_prompts_matches_local(swarm_llama, tiny_llama):
    routes, _ = swarm_llama
    model = AutoDistributedModelForCausalLM.from_pretrained(tiny_llama, initial_peers=routes[2],
                                                            tuning_mode="ptune", pre_seq_len=3)
    try:
        ids = torch.randint(0, 320, (1, 5), generator=torch.Generator().manual_seed(5))
        got = model.generate(ids, max_new_tokens=6)
        seq = ids
        with torch.no_grad():
            for _ in range(6):
                logits, _, _ = _local(tiny_llama, model.prompts.weight, seq)
                seq = torch.cat([seq, logits[:, -1].argmax(-1, keepdim=True)], 1)
        assert got.tolist() == seq.tolist()
    finally:
        model.close()


def test_save_and_load_prompts_peft_layout(swarm_llama, tiny_llama, tmp_path):
    routes, _ = swarm_llama
    model = AutoDistributedModelForSequenceClassification.from_pretrained(
        tiny_llama, initial_peers=routes[2], tuning_mode="ptune", pre_seq_len=5, num_labels=3)
    again = None
    try:
        out = model.save_pretrained(tmp_path / "adapter")
        cfg = json.loads((out / "adapter_config.json").read_text())
        assert cfg["peft_type"] == "PROMPT_TUNING" and cfg["num_virtual_tokens"] == 5
        assert cfg["token_dim"] == 64 and cfg["task_type"] == "SEQ_CLS" and cfg["num_layers"] == 6
        assert (out / "adapter_model.safetensors").is_file()
        again = AutoDistributedModelForSequenceClassification.from_pretrained(
            tiny_llama, initial_peers=routes[2], adapter=out)
        assert again.prompts.length == 5 and again.score.out_features == 3
        assert torch.equal(again.prompts.weight, model.prompts.weight)
        ids, mask, _ = _batch(3)
        with torch.no_grad():
            assert torch.equal(again(ids, attention_mask=mask).logits, model(ids, attention_mask=mask).logits)
    finally:
        model.close()
        if again is not None:
            again.close()


def _offline(path, **kw):
    return AutoDistributedModelForCausalLM.from_pretrained(path, initial_peers=NOWHERE, **kw)


def test_bad_adapters_and_options_raise_clear_errors(tiny_llama, tmp_path):
    from safetensors.torch import save_file

    from pollen.model.tiny import make_checkpoint

    model = _offline(tiny_llama, tuning_mode="ptune", pre_seq_len=4)
    path = model.save_pretrained(tmp_path / "a")
    with pytest.raises(TuningError, match="num_virtual_tokens=4 but the model has pre_seq_len=6"):
        _offline(tiny_llama, tuning_mode="ptune", pre_seq_len=6, adapter=path)
    save_file({"prompt_embeddings": torch.zeros(4, 32)}, str(path / "adapter_model.safetensors"),
              metadata={"format": "pt"})
    with pytest.raises(TuningError, match=r"shape \(4, 32\), expected \(4, 64\)"):
        _offline(tiny_llama, adapter=path)
    other = make_checkpoint("llama", tmp_path / "other", hidden_size=32, intermediate_size=64)
    _offline(other, tuning_mode="ptune", pre_seq_len=4).save_pretrained(tmp_path / "b")
    with pytest.raises(TuningError, match="another base model"):
        _offline(tiny_llama, adapter=tmp_path / "b")
    with pytest.raises(TuningError, match="pre_seq_len >= 1"):
        _offline(tiny_llama, tuning_mode="ptune")
    with pytest.raises(TuningError, match="needs the model's tokenizer"):
        _offline(tiny_llama, tuning_mode="ptune", pre_seq_len=2, prompt_init_text="hello")
    with pytest.raises(TuningError, match="not supported"):
        _offline(tiny_llama, tuning_mode="prefix")
    with pytest.raises(TuningError, match="not a saved adapter"):
        _offline(tiny_llama, adapter=tmp_path / "nope")
    with pytest.raises(TuningError, match="left padding"):
        model(torch.zeros(1, 3, dtype=torch.long), attention_mask=torch.tensor([[0, 1, 1]]))
    with pytest.raises(TuningError, match="nothing to save"):
        _offline(tiny_llama).save_pretrained(tmp_path / "c")
