"""Token generation over an inference session, driven by a transformers `GenerationConfig`.

    model.generate(ids, max_new_tokens=32, do_sample=True, top_p=0.9, streamer=TextStreamer(tok))

Keywords are the fields of `GenerationConfig` (or `generation_config=` itself), merged over the
model's own `generation_config.json` exactly as transformers does. What the swarm cannot do yet
(beam search, padded batches, returning scores, ...) raises `GenerationConfigError` naming the
field, instead of being silently ignored; a misspelt keyword raises too. Greedy decoding and
sampling use transformers' own logits processors, so a swarm and `transformers` with the same
weights produce the same tokens.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from client.errors import ClientError


class GenerationConfigError(ClientError, ValueError):
    """A generation setting the distributed model does not support, or a keyword that is none."""


# GenerationConfig fields that do not change which tokens come out, or that we apply.
HANDLED = {
    "max_new_tokens", "max_length", "min_new_tokens", "min_length", "do_sample", "temperature",
    "top_k", "top_p", "min_p", "typical_p", "repetition_penalty", "no_repeat_ngram_size",
    "bad_words_ids", "eos_token_id", "pad_token_id", "bos_token_id", "stop_strings",
    "num_return_sequences", "use_cache", "output_attentions", "output_hidden_states",
    "transformers_version", "_from_model_config", "_commit_hash", "cache_implementation",
    "decoder_start_token_id", "remove_invalid_values", "renormalize_logits",
}
WHY_NOT = {
    "num_beams": "beam search is not implemented over the swarm: use greedy (num_beams=1) or sampling",
    "num_beam_groups": "beam search is not implemented over the swarm",
    "penalty_alpha": "contrastive search is not implemented over the swarm",
    "return_dict_in_generate": "generate returns the token ids tensor only",
    "output_scores": "generate returns the token ids tensor only",
    "output_logits": "generate returns the token ids tensor only",
    "assistant_model": "assisted / speculative decoding is not implemented over the swarm",
    "prompt_lookup_num_tokens": "prompt-lookup decoding is not implemented over the swarm",
}


def load_generation_config(model_path: str | Path, model_config):
    """A checkpoint's generation defaults: its `generation_config.json`, else from its config."""
    from transformers import GenerationConfig

    if (Path(model_path) / "generation_config.json").exists():
        return GenerationConfig.from_pretrained(model_path)
    return GenerationConfig.from_model_config(model_config)


def default_generation_config(model):
    if getattr(model, "generation_config", None) is not None:
        return model.generation_config
    from transformers import GenerationConfig

    return GenerationConfig.from_model_config(model.config)


def resolve_config(model, generation_config=None, **kwargs):
    """transformers' precedence: `kwargs` > `generation_config` > the model's > global defaults;
    then refuse (naming the field) any setting that changes the output and that we do not do."""
    from transformers import GenerationConfig

    config = copy.deepcopy(generation_config or GenerationConfig())
    globals_ = GenerationConfig._get_default_generation_params()
    config.update(**default_generation_config(model).to_dict(), defaults_only=True, allow_custom_entries=True)
    config.update(**globals_, defaults_only=True)
    unknown = config.update(**kwargs)
    if unknown:
        raise GenerationConfigError(
            f"generate() got unknown keyword(s) {', '.join(sorted(unknown))}: not fields of "
            "transformers.GenerationConfig (misspelt?)")
    for field, value in config.to_dict().items():
        if field in HANDLED or value in (None, globals_.get(field)):
            continue
        why = WHY_NOT.get(field, "not supported by Pollen's distributed generation")
        raise GenerationConfigError(f"generation setting {field}={value!r}: {why}")
    return config


def build_processors(config, prompt_len: int, eos: list[int]):
    """transformers' processors for `config`, in transformers' order; warpers only when sampling."""
    from transformers import (LogitsProcessorList, MinLengthLogitsProcessor, MinNewTokensLengthLogitsProcessor,
                              MinPLogitsWarper, NoBadWordsLogitsProcessor, NoRepeatNGramLogitsProcessor,
                              RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper, TopKLogitsWarper,
                              TopPLogitsWarper, TypicalLogitsWarper)

    procs = LogitsProcessorList()
    if config.repetition_penalty not in (None, 1.0):
        procs.append(RepetitionPenaltyLogitsProcessor(config.repetition_penalty))
    if config.no_repeat_ngram_size:
        procs.append(NoRepeatNGramLogitsProcessor(config.no_repeat_ngram_size))
    if config.bad_words_ids:
        procs.append(NoBadWordsLogitsProcessor(config.bad_words_ids, eos))
    if config.min_length and eos:
        procs.append(MinLengthLogitsProcessor(config.min_length, eos))
    if config.min_new_tokens and eos:
        procs.append(MinNewTokensLengthLogitsProcessor(prompt_len, config.min_new_tokens, eos))
    if not config.do_sample:
        return procs
    if config.temperature not in (None, 1.0):
        procs.append(TemperatureLogitsWarper(config.temperature))
    if config.top_k:
        procs.append(TopKLogitsWarper(config.top_k))
    if config.top_p is not None and config.top_p < 1.0:
        procs.append(TopPLogitsWarper(config.top_p))
    if config.min_p:
        procs.append(MinPLogitsWarper(config.min_p))
    if config.typical_p is not None and config.typical_p < 1.0:
        procs.append(TypicalLogitsWarper(config.typical_p))
    return procs


def _as_list(token_ids) -> list[int]:
    if token_ids is None:
        return []
    return [token_ids] if isinstance(token_ids, int) else list(token_ids)


def _new_token_budget(config, prompt_len: int) -> int:
    if config.max_new_tokens is not None:
        return config.max_new_tokens
    budget = (config.max_length or 20) - prompt_len
    if budget <= 0:
        raise GenerationConfigError(
            f"max_length={config.max_length} leaves no room after the {prompt_len}-token prompt: "
            "pass max_new_tokens")
    return budget


def padded_rows(attention_mask) -> list[int] | None:
    """Per row, how many left pads the mask has; None when nothing is padded. Right padding or
    holes raise (a decoder-only model continues after the last token, as transformers warns)."""
    if attention_mask is None:
        return None
    mask = torch.as_tensor(attention_mask).bool()  # (B, T)
    if bool(mask.all()):
        return None
    pads = (~mask).int().cumprod(dim=1).sum(dim=1)  # (B,) leading zeros
    for row, n in enumerate(pads.tolist()):
        if n == mask.shape[1]:
            raise GenerationConfigError(f"attention_mask row {row} is all padding: nothing to continue")
        if not bool(mask[row, n:].all()):
            raise GenerationConfigError(
                f"attention_mask row {row} has padding after its first token: pad on the left for "
                "generation (tokenizer.padding_side = 'left')")
    return pads.tolist()


class _CallableStreamer:
    """Adapts `fn(new_tokens)` to transformers' streamer protocol (put / end)."""

    def __init__(self, fn):
        self.fn, self.prompt_seen = fn, False

    def put(self, value):
        if self.prompt_seen:
            self.fn(value)
        self.prompt_seen = True

    def end(self):
        pass


def generate(model, inputs: torch.Tensor | None = None, generation_config=None, *, session=None, streamer=None,
             generator=None, attention_mask=None, tokenizer=None, input_ids=None, **kwargs) -> torch.Tensor:
    """(B, T) prompt -> (B·n, T + new) ids, n = num_return_sequences. In a session (`session=`, or
    the one a `with model.inference_session(...)` block opened) it continues where the last call
    left off, as Petals does: the previous calls' tokens condition the processors (repetition
    penalty, n-grams), only this call's tokens are returned, and `inputs=None` just goes on.
    A left-padded batch (`attention_mask` with leading zeros) runs each row alone and pads the
    results like transformers. `streamer` follows transformers' protocol: `put(prompt)`,
    `put(tokens)` per step, `end()`; a plain callable gets each new (B,) batch of tokens."""
    inputs = inputs if inputs is not None else input_ids
    config = resolve_config(model, generation_config, **kwargs)
    session = session if session is not None else getattr(model, "active_session", None)
    pads = padded_rows(attention_mask)
    if pads is not None:
        return _generate_padded(model, inputs, pads, config, session, streamer, generator, tokenizer)
    if inputs is None and session is None:
        raise GenerationConfigError("generate() needs input ids (inputs= / input_ids=) unless it continues "
                                    "an inference session")
    if streamer is not None and not hasattr(streamer, "put"):
        streamer = _CallableStreamer(streamer)
    if session is not None:
        return _continue(model, session, inputs, config, streamer, generator, tokenizer)
    if (config.num_return_sequences or 1) > 1:
        inputs = inputs.repeat_interleave(config.num_return_sequences, dim=0)
    budget = _new_token_budget(config, inputs.shape[1])
    with model.inference_session(inputs.shape[1] + budget, inputs.shape[0]) as own:
        return _continue(model, own, inputs, config, streamer, generator, tokenizer)


def _continue(model, session, inputs, config, streamer, generator, tokenizer) -> torch.Tensor:
    """One generate() call in `session`: (B, t) new inputs (or None) -> (B, t + new)."""
    history = getattr(session, "output_ids", None)  # (B, n_prev) tokens of earlier calls
    if inputs is None and session.pending_ids is None:
        raise GenerationConfigError("generate(None) continues a session, but this one has no tokens yet: "
                                    "pass input ids")
    if inputs is None:
        inputs = torch.empty(session.pending_ids.shape[0], 0, dtype=torch.long)
    n_prev = 0 if history is None else history.shape[1]
    ids = inputs if history is None else torch.cat([history, inputs], dim=1)  # (B, n_prev + t)
    eos = _as_list(config.eos_token_id)
    pad = config.pad_token_id if config.pad_token_id is not None else (eos[0] if eos else 0)
    budget = _new_token_budget(config, ids.shape[1])
    procs = build_processors(config, ids.shape[1], eos)
    stops = [config.stop_strings] if isinstance(config.stop_strings, str) else list(config.stop_strings or [])
    ids = _decode(model, session, ids, inputs, budget, config, procs, eos, pad, stops, streamer, generator,
                  tokenizer or model.tokenizer)
    session.output_ids = ids
    return ids[:, n_prev:]


def _generate_padded(model, inputs, pads, config, session, streamer, generator, tokenizer) -> torch.Tensor:
    """A left-padded batch, row by row: each row's unpadded prompt generated alone (exactly the
    tokens it gets alone), then laid out as transformers does: left pads kept, rows that stopped
    early filled with the pad token on the right."""
    if session is not None:
        raise GenerationConfigError("a left-padded batch cannot continue an inference session: open one "
                                    "session per prompt, or pass prompts of equal length")
    if streamer is not None:
        raise GenerationConfigError("streamers take one sequence: stream prompts one at a time")
    eos = _as_list(config.eos_token_id)
    pad = config.pad_token_id if config.pad_token_id is not None else (eos[0] if eos else 0)
    n, width = config.num_return_sequences or 1, inputs.shape[1]
    rows = []
    for row, n_pad in enumerate(pads):
        row_config = copy.deepcopy(config)
        if config.max_new_tokens is None:  # max_length counts the pads, as in transformers
            row_config.max_new_tokens = _new_token_budget(config, width)
        out = generate(model, inputs[row:row + 1, n_pad:], row_config, generator=generator,
                       tokenizer=tokenizer)  # (n, T_row + new_row)
        rows += [torch.cat([inputs[row:row + 1, :n_pad].expand(n, -1), out], dim=1)]
    longest = max(r.shape[1] for r in rows)
    return torch.cat([torch.nn.functional.pad(r, (0, longest - r.shape[1]), value=pad) for r in rows])


def _decode(model, session, ids, inputs, budget, config, procs, eos, pad, stops, streamer, generator, tokenizer):
    """ids (B, T): the session's tokens so far and this call's inputs (B, t) -> (B, T + new)."""
    to_send = inputs if session.pending_ids is None else torch.cat([session.pending_ids, inputs], 1)
    start, done = ids.shape[1], torch.zeros(ids.shape[0], dtype=torch.bool)
    if streamer is not None:
        streamer.put(ids)
    for _ in range(budget):
        h = session.step(model.embed(to_send))  # (B, t, H), on the host (the wire's side)
        scores = procs(ids, model.logits(h[:, -1]).float().cpu())  # (B, V)
        if config.do_sample:
            nxt = torch.multinomial(torch.softmax(scores, -1), 1, generator=generator).squeeze(1)
        else:
            nxt = scores.argmax(-1)  # (B,)
        nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
        ids, to_send = torch.cat([ids, nxt[:, None]], dim=1), nxt[:, None]
        if streamer is not None:
            streamer.put(nxt)
        if eos:
            done |= torch.isin(nxt, torch.tensor(eos, dtype=nxt.dtype))
        if done.all() or _hit_stop(tokenizer, ids[:, start:], stops):
            break
    session.pending_ids = to_send
    if streamer is not None:
        streamer.end()
    return ids


def _hit_stop(tokenizer, new_ids: torch.Tensor, stops: list[str]) -> bool:
    if not stops:
        return False
    if tokenizer is None:
        raise GenerationConfigError("stop_strings needs a tokenizer: pass tokenizer= or load the "
                                    "model from a folder that has one")
    texts = tokenizer.batch_decode(new_ids, skip_special_tokens=True)
    return all(any(s in t for s in stops) for t in texts)
