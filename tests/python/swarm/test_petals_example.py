"""A Petals user's script runs on Pollen after changing only its import line; left-padded
batches and Petals-style session calls (`generate(None, session=...)`, the active session)."""

from __future__ import annotations

import difflib
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from client import AutoDistributedModelForCausalLM
from client.generation import GenerationConfigError

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "petals_quickstart.py"
PETALS_IMPORT = "from petals import AutoDistributedModelForCausalLM\n"


def test_the_petals_quickstart_differs_only_in_its_import_line_and_runs(swarm_smollm2, smollm2, hf_models):
    ours = EXAMPLE.read_text().splitlines(keepends=True)
    petals = [PETALS_IMPORT if line.startswith("from client import") else line for line in ours]
    changed = [d for d in difflib.unified_diff(petals, ours, n=0) if d[:1] in "+-" and d[:3] not in ("+++", "---")]
    assert changed == ["-" + PETALS_IMPORT, "+from client import AutoDistributedModelForCausalLM\n"]
    routes, _ = swarm_smollm2
    run = subprocess.run([sys.executable, str(EXAMPLE), str(smollm2), ",".join(routes[2])],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = dict(line.split(": ", 1) for line in run.stdout.splitlines())
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smollm2)
    ids = tok("A cat sat on", return_tensors="pt")["input_ids"]
    ref = hf_models(smollm2).generate(ids, max_new_tokens=6, do_sample=False)
    expected = repr(tok.decode(ref[0, ids.shape[1]:]))
    assert lines["one call"] == expected and lines["in a session"] == expected
    assert lines["logits"] == str((1, ids.shape[1], hf_models(smollm2).config.vocab_size))


@pytest.fixture(scope="module")
def llama(swarm_llama, tiny_llama):
    model = AutoDistributedModelForCausalLM.from_pretrained(tiny_llama, initial_peers=swarm_llama[0][2])
    yield model
    model.close()


def test_a_left_padded_batch_equals_each_prompt_alone(llama, hf_models, tiny_llama):
    a, b = [5, 17, 42, 9, 101, 7], [33, 8, 250]
    pad = 0
    batch = torch.tensor([a, [pad] * 3 + b])
    mask = torch.tensor([[1] * 6, [0] * 3 + [1] * 3])
    out = llama.generate(batch, attention_mask=mask, max_new_tokens=8)
    alone = [llama.generate(torch.tensor([p]), max_new_tokens=8) for p in (a, b)]
    assert out.shape == (2, 6 + 8)
    assert out[0].tolist() == alone[0][0].tolist()
    assert out[1, :3].tolist() == [pad] * 3 and out[1, 3:].tolist() == alone[1][0].tolist()
    hf = hf_models(tiny_llama)
    assert alone[1].tolist() == hf.generate(torch.tensor([b]), max_new_tokens=8, do_sample=False).tolist()
    sampled = dict(max_new_tokens=3, do_sample=True, num_return_sequences=2)
    n2 = llama.generate(batch, attention_mask=mask, generator=torch.Generator().manual_seed(4), **sampled)
    first = llama.generate(torch.tensor([a]), generator=torch.Generator().manual_seed(4), **sampled)
    assert n2.shape == (4, 9) and n2[:2].tolist() == first.tolist()


@pytest.mark.parametrize("mask, message", [
    ([[1, 1, 1], [1, 1, 0]], "row 1 has padding after its first token: pad on the left"),
    ([[1, 1, 1], [0, 0, 0]], "row 1 is all padding"),
])
def test_right_padding_and_empty_rows_are_refused(llama, mask, message):
    ids = torch.tensor([[5, 6, 7], [8, 9, 10]])
    with pytest.raises(GenerationConfigError, match=message):
        llama.generate(ids, attention_mask=torch.tensor(mask), max_new_tokens=2)
    with pytest.raises(GenerationConfigError, match="streamers take one sequence"):
        llama.generate(ids, attention_mask=torch.tensor([[1, 1, 1], [0, 1, 1]]), max_new_tokens=2,
                       streamer=lambda tokens: None)


def test_petals_style_session_calls(llama):
    ids = torch.tensor([[5, 17, 42, 9, 101, 7]])
    one_shot = llama.generate(ids, max_new_tokens=6)
    with llama.inference_session(max_length=32) as sess:
        first = llama.generate(ids, max_new_tokens=1)  # no session=: the active one (Petals)
        rest = [llama.generate(None, max_new_tokens=1, session=sess) for _ in range(5)]
        assert sess.position == ids.shape[1] + 5  # the prompt went to the servers once
    assert llama.active_session is None
    assert torch.cat([first] + rest, dim=1).tolist() == one_shot.tolist()
    with pytest.raises(GenerationConfigError, match="needs input ids"):
        llama.generate(None, max_new_tokens=1)
    with llama.inference_session(max_length=8) as fresh, \
            pytest.raises(GenerationConfigError, match="has no tokens yet"):
        llama.generate(None, max_new_tokens=1, session=fresh)


def test_repetition_penalty_sees_the_sessions_earlier_tokens(llama, hf_models, tiny_llama):
    ids = torch.tensor([[5, 17, 42, 9]])
    one_shot = llama.generate(ids, max_new_tokens=8, repetition_penalty=1.5)
    with llama.inference_session(max_length=32) as sess:
        parts = [llama.generate(ids, max_new_tokens=4, repetition_penalty=1.5, session=sess),
                 llama.generate(None, max_new_tokens=4, repetition_penalty=1.5, session=sess)]
    assert torch.cat(parts, dim=1).tolist() == one_shot.tolist()
    assert one_shot.tolist() == hf_models(tiny_llama).generate(ids, max_new_tokens=8, repetition_penalty=1.5,
                                                               do_sample=False).tolist()
