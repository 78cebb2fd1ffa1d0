"""Client-owned trainable parameters for fine-tuning through the swarm (Petals' `tuning_mode`).

Shallow prompt tuning ("ptune"): `pre_seq_len` trainable embeddings are prepended to the token
embeddings before the remote blocks and stripped again before the LM head, so logits and loss
line up with `input_ids`. Servers run the frozen blocks forward and backward (RemoteBlocks);
only the prompts (and a classification head, if any) receive gradients.

Saved in the peft layout (`adapter_config.json` with peft_type "PROMPT_TUNING" +
`adapter_model.safetensors` holding "prompt_embeddings" and, for classification, "score.weight").
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from client.errors import ClientError
from client.session import InferenceSession

IGNORE_INDEX = -100
TUNING_MODES = (None, "ptune")
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
PROMPTS_KEY, SCORE_KEY = "prompt_embeddings", "score.weight"


class TuningError(ClientError):
    """Bad tuning options, or an adapter that does not fit this model."""


@dataclass(frozen=True)
class TuningConfig:
    """The one set of fine-tuning options: from_pretrained(..., tuning_mode=, pre_seq_len=, ...)."""

    tuning_mode: str | None = None
    pre_seq_len: int = 0
    init_text: str | None = None  # peft's "TEXT" init: the embeddings of these tokens, repeated to N
    init_std: float | None = None  # else N(0, std); None: embeddings of random vocabulary tokens
    seed: int = 0

    def __post_init__(self):
        if self.tuning_mode not in TUNING_MODES:
            raise TuningError(f"tuning_mode {self.tuning_mode!r} is not supported (choose from {TUNING_MODES}; "
                              "deep prompts ('deep_ptune') need server support that is not there yet)")
        if self.tuning_mode == "ptune" and self.pre_seq_len < 1:
            raise TuningError(f"tuning_mode='ptune' needs pre_seq_len >= 1 (got {self.pre_seq_len})")
        if self.tuning_mode is None and self.pre_seq_len:
            raise TuningError(f"pre_seq_len={self.pre_seq_len} without tuning_mode: pass tuning_mode='ptune'")


class PromptEmbeddings(nn.Module):
    """`weight` (N, C): the trainable shallow prompt; `prepend(h)`: (B, T, C) -> (B, N + T, C)."""

    def __init__(self, n: int, embed: nn.Embedding, cfg: TuningConfig, tokenizer=None):
        super().__init__()
        gen = torch.Generator().manual_seed(cfg.seed)
        w = embed.weight.detach()
        if cfg.init_text is not None:
            init = w[_text_ids(cfg.init_text, tokenizer, n)].clone()
        elif cfg.init_std is None:  # like peft's "RANDOM"-from-vocab: real token embeddings
            init = w[torch.randint(0, w.shape[0], (n,), generator=gen)].clone()
        else:
            init = torch.randn(n, w.shape[1], generator=gen, dtype=w.dtype) * cfg.init_std
        self.weight = nn.Parameter(init.float())

    @property
    def length(self) -> int:
        return self.weight.shape[0]

    def prepend(self, h: torch.Tensor) -> torch.Tensor:
        p = self.weight.to(h.dtype)[None].expand(h.shape[0], -1, -1)  # (B, N, C)
        return torch.cat([p, h], dim=1)


def _text_ids(text: str, tokenizer, n: int) -> torch.Tensor:
    if tokenizer is None:
        raise TuningError("init_text needs the model's tokenizer (tokenizer.json in the checkpoint dir)")
    ids = tokenizer(text, add_special_tokens=False).input_ids
    if not ids:
        raise TuningError(f"init_text {text!r} has no tokens")
    return torch.tensor((ids * (n // len(ids) + 1))[:n])


class PromptedSession(InferenceSession):
    """An inference session whose first step is preceded by the prompts (output stripped)."""

    def __init__(self, shallow: PromptEmbeddings, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.shallow = shallow  # (not `prompts`: InferenceSession keeps deep prompts there)

    def step(self, hidden: torch.Tensor, prompts: torch.Tensor | None = None) -> torch.Tensor:
        if self.position:
            return super().step(hidden, prompts)
        with torch.no_grad():
            out = super().step(self.shallow.prepend(hidden), prompts)
        return out[:, self.shallow.length:]


# ---- losses and pooling ---------------------------------------------------------------------
def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """HF semantics: position t predicts labels[t + 1]; labels == -100 are ignored."""
    # logits: (B, T, V), labels: (B, T)
    shift_logits = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
    shift_labels = labels[:, 1:].reshape(-1).to(logits.device)
    return F.cross_entropy(shift_logits, shift_labels, ignore_index=IGNORE_INDEX)


def check_right_padded(attention_mask: torch.Tensor | None) -> None:
    """Servers attend causally with no mask: padding must come after the tokens."""
    if attention_mask is None:
        return
    m = attention_mask.bool()
    if (m[:, 1:] & ~m[:, :-1]).any():
        raise TuningError("attention_mask has padding before tokens (left padding); the swarm attends "
                          "causally without a mask, so pad on the right (tokenizer.padding_side = 'right')")


def last_token_index(input_ids: torch.Tensor | None, attention_mask: torch.Tensor | None,
                     pad_token_id: int | None, shape: tuple[int, int]) -> torch.Tensor:
    """(B,) index of each row's last real token: from attention_mask, else the last non-pad id."""
    if attention_mask is not None:
        keep = attention_mask.bool()
    elif input_ids is not None and pad_token_id is not None:
        keep = input_ids != pad_token_id
    elif shape[0] == 1:
        return torch.full((1,), shape[1] - 1, dtype=torch.long)
    else:
        raise TuningError("batch of several sequences with no attention_mask and no pad_token_id in the "
                          "config: pass attention_mask so the last real token of each row is known")
    pos = torch.arange(keep.shape[1], device=keep.device)
    return (pos * keep).argmax(-1)


def classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B, L) logits: MSE when L == 1 (regression), cross-entropy otherwise."""
    if logits.shape[-1] == 1:
        return F.mse_loss(logits.squeeze(-1).float(), labels.float())
    return F.cross_entropy(logits.float(), labels.long())


def final_norm(parts: nn.Module) -> nn.Module:
    """The family's last norm before the LM head (llama: norm, bloom: ln_f)."""
    for name in ("norm", "ln_f"):
        if hasattr(parts, name):
            return getattr(parts, name)
    raise TuningError(f"client parts {type(parts).__name__} have no final norm")


# ---- save / load (peft layout) ----------------------------------------------------------------
def base_fingerprint(config) -> str:
    """sha256 over the model's architecture fields: an adapter only fits the model it was trained on."""
    d = config.to_dict()
    keep = {k: d.get(k) for k in ("model_type", "hidden_size", "num_hidden_layers", "n_layer", "vocab_size",
                                  "num_attention_heads", "n_head", "intermediate_size")}
    return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()


def adapter_config(model, base_name: str) -> dict:
    c, n = model.config, model.family.num_blocks(model.config)
    seq_cls = model.score is not None
    return {
        "peft_type": "PROMPT_TUNING", "task_type": "SEQ_CLS" if seq_cls else "CAUSAL_LM",
        "num_virtual_tokens": model.prompts.length, "token_dim": int(c.hidden_size),
        "num_transformer_submodules": 1, "num_layers": n,
        "num_attention_heads": int(getattr(c, "num_attention_heads", None) or c.n_head),
        "prompt_tuning_init": "TEXT" if model.tuning.init_text else "RANDOM",
        "prompt_tuning_init_text": model.tuning.init_text,
        "base_model_name_or_path": base_name, "tokenizer_name_or_path": base_name,
        "inference_mode": True, "revision": None, "auto_mapping": None, "tokenizer_kwargs": None,
        "modules_to_save": ["score"] if seq_cls else None,
        "num_labels": model.score.out_features if seq_cls else None,
    }


def save_adapter(model, out_dir: str | Path) -> Path:
    from safetensors.torch import save_file

    if model.prompts is None and model.score is None:
        raise TuningError("nothing to save: load the model with tuning_mode='ptune', pre_seq_len=N "
                          "(or a classification head) before save_pretrained")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = adapter_config(model, model.name_or_path)
    tensors = {}
    if model.prompts is not None:
        tensors[PROMPTS_KEY] = model.prompts.weight.detach().contiguous()
    else:
        cfg["num_virtual_tokens"] = 0
    if model.score is not None:
        tensors[SCORE_KEY] = model.score.weight.detach().contiguous()
    (out / ADAPTER_CONFIG).write_text(json.dumps(cfg, indent=2))
    save_file(tensors, str(out / ADAPTER_WEIGHTS),
              metadata={"format": "pt", "pollen_base_fingerprint": base_fingerprint(model.config)})
    return out


def read_adapter(path: str | Path) -> tuple[dict, dict[str, torch.Tensor], dict]:
    """(adapter_config, tensors, safetensors metadata); raises TuningError on a bad layout."""
    from safetensors import safe_open

    path = Path(path)
    if not (path / ADAPTER_CONFIG).is_file() or not (path / ADAPTER_WEIGHTS).is_file():
        raise TuningError(f"{path} is not a saved adapter (needs {ADAPTER_CONFIG} and {ADAPTER_WEIGHTS}; "
                          "write one with model.save_pretrained(dir))")
    cfg = json.loads((path / ADAPTER_CONFIG).read_text())
    if cfg.get("peft_type") != "PROMPT_TUNING":
        raise TuningError(f"{path}: peft_type {cfg.get('peft_type')!r} is not supported (only PROMPT_TUNING)")
    with safe_open(str(path / ADAPTER_WEIGHTS), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        meta = f.metadata() or {}
    return cfg, tensors, meta


def tuning_from_adapter(cfg: dict) -> tuple[TuningConfig, int | None]:
    """What from_pretrained(adapter=...) must build before loading: (tuning config, num_labels)."""
    n = int(cfg.get("num_virtual_tokens") or 0)
    return TuningConfig("ptune" if n else None, n), cfg.get("num_labels")


def load_adapter(model, path: str | Path) -> None:
    """Copy saved prompts (and head) into `model`, checking every shape and the base model first."""
    cfg, tensors, meta = read_adapter(path)
    want = base_fingerprint(model.config)
    if meta.get("pollen_base_fingerprint", want) != want:
        raise TuningError(f"{path} was trained on another base model ({cfg.get('base_model_name_or_path')}); "
                          f"this model is {model.name_or_path}")
    _check_prompts(model, cfg, tensors.get(PROMPTS_KEY), path)
    _check_score(model, tensors.get(SCORE_KEY), path)
    with torch.no_grad():
        if model.prompts is not None:
            model.prompts.weight.copy_(tensors[PROMPTS_KEY])
        if model.score is not None and SCORE_KEY in tensors:
            model.score.weight.copy_(tensors[SCORE_KEY])


def _check_prompts(model, cfg: dict, prompts: torch.Tensor | None, path) -> None:
    n_saved = int(cfg.get("num_virtual_tokens") or 0)
    n_model = model.prompts.length if model.prompts is not None else 0
    if n_saved != n_model:
        raise TuningError(f"{path} has num_virtual_tokens={n_saved} but the model has pre_seq_len={n_model}: "
                          f"load it with from_pretrained(..., adapter=path) or pre_seq_len={n_saved}")
    if n_model == 0:
        return
    shape = (n_model, int(model.config.hidden_size))
    if prompts is None or tuple(prompts.shape) != shape:
        got = None if prompts is None else tuple(prompts.shape)
        raise TuningError(f"{path}: {PROMPTS_KEY} has shape {got}, expected {shape} (pre_seq_len, hidden_size)")


def _check_score(model, score: torch.Tensor | None, path) -> None:
    if model.score is None or score is None:
        return
    if tuple(score.shape) != tuple(model.score.weight.shape):
        raise TuningError(f"{path}: {SCORE_KEY} has shape {tuple(score.shape)}, expected "
                          f"{tuple(model.score.weight.shape)} (num_labels, hidden_size)")
