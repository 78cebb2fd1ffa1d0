"""transformers-compatible generation over real server processes: GenerationConfig keywords and
objects, the checkpoint's generation_config.json, HF streamers, and clear errors for what the
swarm does not do (instead of silently ignoring it)."""

from __future__ import annotations

import json
import shutil
import threading

import pytest
import torch
from transformers import GenerationConfig, TextIteratorStreamer, TextStreamer

from client import AutoDistributedModelForCausalLM
from client.generation import GenerationConfigError


@pytest.fixture(scope="module")
def llama(swarm_llama, tiny_llama):
    routes, _ = swarm_llama
    model = AutoDistributedModelForCausalLM.from_pretrained(tiny_llama, initial_peers=routes[2])
    yield model
    model.close()


IDS = torch.tensor([[5, 17, 42, 9, 101, 7]])


def test_generation_config_object_and_keywords_match_transformers(llama, hf_models, tiny_llama):
    hf = hf_models(tiny_llama)
    config = GenerationConfig(max_new_tokens=10, repetition_penalty=1.3, no_repeat_ngram_size=2,
                              bad_words_ids=[[3], [4]])
    got = llama.generate(IDS, generation_config=config)
    assert got.tolist() == hf.generate(IDS, generation_config=config).tolist()
    assert not {3, 4} & set(got[0, IDS.shape[1]:].tolist())  # the bad words really were banned
    got = llama.generate(IDS, max_length=IDS.shape[1] + 5)  # HF semantics: total length
    assert got.shape[1] == IDS.shape[1] + 5
    assert got.tolist() == hf.generate(IDS, max_length=IDS.shape[1] + 5, do_sample=False).tolist()


def test_the_checkpoints_generation_config_json_is_read(swarm_llama, tiny_llama, tmp_path, hf_models):
    copy = tmp_path / tiny_llama.name
    shutil.copytree(tiny_llama, copy)
    (copy / "generation_config.json").write_text(json.dumps(
        {"max_new_tokens": 7, "no_repeat_ngram_size": 1, "do_sample": False}))
    model = AutoDistributedModelForCausalLM.from_pretrained(copy, initial_peers=swarm_llama[0][1])
    try:
        got = model.generate(IDS)
        assert got.shape[1] == IDS.shape[1] + 7
        new = got[0, IDS.shape[1]:].tolist()
        assert len(set(new + IDS[0].tolist())) == len(new) + IDS.shape[1]  # no token repeated
        assert got.tolist() == hf_models(copy).generate(IDS).tolist()
    finally:
        model.close()


def test_hf_streamers_receive_every_token(llama, smollm2):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smollm2)  # any tokenizer covering the tiny vocab decodes
    printed = []

    class Capture(TextStreamer):
        def on_finalized_text(self, text, stream_end=False):
            printed.append(text)

    out = llama.generate(IDS, max_new_tokens=8, streamer=Capture(tok, skip_prompt=True))
    assert "".join(printed) == tok.decode(out[0, IDS.shape[1]:])
    it = TextIteratorStreamer(tok, skip_prompt=True, timeout=60)
    result = {}
    worker = threading.Thread(target=lambda: result.update(out=llama.generate(IDS, max_new_tokens=8, streamer=it)))
    worker.start()
    text = "".join(it)
    worker.join(60)
    assert text == tok.decode(result["out"][0, IDS.shape[1]:])


@pytest.mark.parametrize("kwargs, message", [
    ({"num_beams": 2}, "num_beams=2: beam search"),
    ({"max_new_token": 5}, "unknown keyword.*max_new_token"),
    ({"return_dict_in_generate": True}, "return_dict_in_generate"),
    ({"attention_mask": torch.tensor([[1, 1, 1, 1, 1, 0]])}, "padding after its first token: pad on the left"),
    ({"max_length": 3}, "max_length=3 leaves no room"),
])
def test_unsupported_settings_raise_naming_the_field(llama, kwargs, message):
    with pytest.raises(GenerationConfigError, match=message):
        llama.generate(IDS, **kwargs)
    # the model (and its servers) keep working after the refusal
    assert llama.generate(IDS, max_new_tokens=2, attention_mask=torch.ones_like(IDS)).shape[1] == IDS.shape[1] + 2


def test_sampling_defaults_follow_transformers(llama):
    from client.generation import build_processors, resolve_config

    config = resolve_config(llama, do_sample=True)
    kinds = [type(p).__name__ for p in build_processors(config, IDS.shape[1], [])]
    assert kinds == ["TopKLogitsWarper"] and config.top_k == 50  # HF's default top_k when sampling
    assert build_processors(resolve_config(llama, top_k=5, temperature=0.5), 6, []) == []  # greedy ignores warpers
    runs = [llama.generate(IDS, max_new_tokens=6, do_sample=True, num_return_sequences=2,
                           generator=torch.Generator().manual_seed(3)) for _ in range(2)]
    assert runs[0].shape == (2, IDS.shape[1] + 6) and runs[0].tolist() == runs[1].tolist()


def test_outputs_and_dtype_keywords_follow_transformers(swarm_llama, tiny_llama, llama):
    from transformers.modeling_outputs import CausalLMOutput

    with torch.no_grad():
        out = llama(IDS, labels=IDS)
    assert isinstance(out, CausalLMOutput) and out["logits"] is out.logits and out[0] is out.loss
    model = AutoDistributedModelForCausalLM.from_pretrained(tiny_llama, initial_peers=swarm_llama[0][1],
                                                            torch_dtype=torch.float32)
    model.close()
    with pytest.raises(ValueError, match="expected float32, bfloat16, float16 or auto"):
        AutoDistributedModelForCausalLM.from_pretrained(tiny_llama, initial_peers=swarm_llama[0][1], torch_dtype="int3")
