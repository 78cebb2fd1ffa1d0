"""Token generation over an inference session, with transformers' own logits processors."""

from __future__ import annotations

import torch


def build_processors(temperature: float, top_k: int, top_p: float, repetition_penalty: float,
                     min_new_tokens: int, prompt_len: int, eos_token_id):
    from transformers import (LogitsProcessorList, MinNewTokensLengthLogitsProcessor,
                              RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper,
                              TopKLogitsWarper, TopPLogitsWarper)

    procs = LogitsProcessorList()
    if repetition_penalty != 1.0:
        procs.append(RepetitionPenaltyLogitsProcessor(repetition_penalty))
    if min_new_tokens and eos_token_id is not None:
        procs.append(MinNewTokensLengthLogitsProcessor(prompt_len, min_new_tokens, eos_token_id))
    if temperature != 1.0:
        procs.append(TemperatureLogitsWarper(temperature))
    if top_k:
        procs.append(TopKLogitsWarper(top_k))
    if top_p < 1.0:
        procs.append(TopPLogitsWarper(top_p))
    return procs


def _eos_ids(model, eos_token_id):
    if eos_token_id is None:
        eos_token_id = getattr(model.config, "eos_token_id", None)
    if eos_token_id is None:
        return []
    return [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id)


def generate(model, input_ids: torch.Tensor, max_new_tokens: int = 20, min_new_tokens: int = 0,
             do_sample: bool = False, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
             repetition_penalty: float = 1.0, eos_token_id=None, pad_token_id=None,
             stop_strings=None, session=None, streamer=None, generator=None, **_ignored) -> torch.Tensor:
    """(B, T) prompt -> (B, T + new) ids. With `session`, continues where it left off.

    `streamer(ids)` is called with each new (B,) batch of tokens.
    """
    eos = _eos_ids(model, eos_token_id)
    pad = pad_token_id if pad_token_id is not None else (eos[0] if eos else 0)
    procs = build_processors(temperature, top_k, top_p, repetition_penalty, min_new_tokens,
                             input_ids.shape[1], eos[0] if eos else None)
    own = session is None
    if own:
        session = model.inference_session(input_ids.shape[1] + max_new_tokens, input_ids.shape[0])
    try:
        ids = input_ids
        to_send = input_ids if session.pending_ids is None else torch.cat([session.pending_ids, input_ids], 1)
        done = torch.zeros(ids.shape[0], dtype=torch.bool)
        stops = [s for s in ([stop_strings] if isinstance(stop_strings, str) else stop_strings or [])]
        for _ in range(max_new_tokens):
            h = session.step(model.parts.embed(to_send))
            scores = procs(ids, model.parts.head(h[:, -1]).float())
            if do_sample:
                nxt = torch.multinomial(torch.softmax(scores, -1), 1, generator=generator).squeeze(1)
            else:
                nxt = scores.argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
            ids = torch.cat([ids, nxt[:, None]], dim=1)
            to_send = nxt[:, None]
            if streamer is not None:
                streamer(nxt)
            done |= torch.isin(nxt, torch.tensor(eos, dtype=nxt.dtype)) if eos else torch.zeros_like(done)
            if done.all() or _hit_stop(model, ids[:, input_ids.shape[1]:], stops):
                break
        session.pending_ids = to_send
        return ids
    finally:
        if own:
            session.close()


def _hit_stop(model, new_ids: torch.Tensor, stops: list[str]) -> bool:
    if not stops or model.tokenizer is None:
        return False
    texts = model.tokenizer.batch_decode(new_ids, skip_special_tokens=True)
    return all(any(s in t for s in stops) for t in texts)
