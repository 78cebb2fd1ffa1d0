"""Client-owned trainable parameters for fine-tuning through the swarm (Petals' `tuning_mode`).

Shallow prompt tuning ("ptune"): `pre_seq_len` trainable embeddings are prepended to the token
embeddings before the remote blocks and stripped again before the LM head, so logits and loss
line up with `input_ids`. Servers run the frozen blocks forward and backward (RemoteBlocks);
only the prompts (and a classification head, if any) receive gradients.

Deep prompt tuning ("deep_ptune", Petals' P-tuning v2 variant): the shallow prompt plus one
trainable (pre_seq_len, C) prompt per remote block, added to the prompt positions before that
block on the server (client.remote); zero-initialised like Petals'.

LoRA ("lora"): the client owns A (r, in) / B (out, r) for the target modules (q_proj and v_proj
by default) of every remote block; every Forward / Backward carries the hop's weights and
Backward returns their gradient (pollen.model.lora). B starts at zero (peft's default), so the
model starts as the base model.

Saved in the peft layout (`adapter_config.json` + `adapter_model.safetensors`):
  * ptune: peft_type "PROMPT_TUNING", "prompt_embeddings" (N, C) and, for classification, "score.weight";
  * deep_ptune: the same plus "pollen_deep_prompts" (blocks, N, C) and "pollen_tuning_mode":
    "deep_ptune" in the config. peft's own P-tuning v2 (PREFIX_TUNING) injects past key/values,
    a different computation, so the layout is peft's PROMPT_TUNING with one extra tensor (peft
    loads the shallow prompt and ignores the rest);
  * lora: peft_type "LORA" with r / lora_alpha / target_modules and peft's key names,
    "base_model.model.{layer prefix}{i}.{module path}.lora_A.weight" (r, in) / ".lora_B.weight" (out, r).
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
TUNING_MODES = (None, "ptune", "deep_ptune", "lora")
PROMPT_MODES = ("ptune", "deep_ptune")
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
PROMPTS_KEY, SCORE_KEY, DEEP_KEY = "prompt_embeddings", "score.weight", "pollen_deep_prompts"
PEFT_PREFIX = "base_model.model."


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
    lora_rank: int = 8  # tuning_mode="lora": r, alpha and the target modules of every block
    lora_alpha: float = 16.0
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")

    def __post_init__(self):
        if self.tuning_mode not in TUNING_MODES:
            raise TuningError(f"tuning_mode {self.tuning_mode!r} is not supported (choose from {TUNING_MODES})")
        if self.tuning_mode in PROMPT_MODES and self.pre_seq_len < 1:
            raise TuningError(f"tuning_mode={self.tuning_mode!r} needs pre_seq_len >= 1 (got {self.pre_seq_len})")
        if self.tuning_mode not in PROMPT_MODES and self.pre_seq_len:
            raise TuningError(f"pre_seq_len={self.pre_seq_len} needs tuning_mode='ptune' or 'deep_ptune'")
        if self.tuning_mode == "lora" and not (1 <= self.lora_rank <= 256 and self.lora_alpha and self.lora_targets):
            raise TuningError(f"LoRA needs 1 <= lora_rank <= 256 (got {self.lora_rank}), a non-zero lora_alpha "
                              f"(got {self.lora_alpha}) and target modules (got {self.lora_targets})")


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


class DeepPrompts(nn.Module):
    """`weight` (blocks, N, C): one trainable prompt per remote block, zeros at first (Petals)."""

    def __init__(self, n_blocks: int, n: int, hidden: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n_blocks, n, hidden))

    def expand(self, batch: int, dtype: torch.dtype) -> torch.Tensor:
        return self.weight.to(dtype)[:, None].expand(-1, batch, -1, -1)  # (blocks, B, N, C)


class LoraWeights(nn.Module):
    """Client-owned LoRA for all remote blocks: `a[k]` (blocks, r, in), `b[k]` (blocks, out, r)
    per target k. A ~ U(+-1/sqrt(in)) (peft's kaiming-uniform bound), B = 0."""

    def __init__(self, block: nn.Module, n_blocks: int, cfg: TuningConfig):
        super().__init__()
        from pollen.model.lora import LoraError, target_shapes

        try:
            shapes = target_shapes(block, cfg.lora_targets)
        except LoraError as exc:
            raise TuningError(str(exc)) from exc
        gen, r = torch.Generator().manual_seed(cfg.seed), cfg.lora_rank
        self.rank, self.alpha, self.targets = r, float(cfg.lora_alpha), tuple(cfg.lora_targets)
        self.a = nn.ParameterList(nn.Parameter((torch.rand(n_blocks, r, i, generator=gen) * 2 - 1) / i ** 0.5)
                                  for i, _ in shapes.values())
        self.b = nn.ParameterList(nn.Parameter(torch.zeros(n_blocks, o, r)) for _, o in shapes.values())

    def tensors(self) -> list[torch.Tensor]:
        """[A_0, B_0, A_1, B_1, ...]: what RemoteTunedBlocks differentiates."""
        return [t for pair in zip(self.a, self.b) for t in pair]

    def layout(self):
        """A pollen.model.lora.Lora over the current (detached) weights."""
        from pollen.model.lora import Lora

        return Lora(self.rank, self.alpha, self.targets, tuple(t.detach() for t in self.a),
                    tuple(t.detach() for t in self.b))


class PromptedSession(InferenceSession):
    """An inference session whose first step is preceded by the prompts (output stripped);
    with deep prompts, they go with that first step too."""

    def __init__(self, shallow: PromptEmbeddings, *args, deep: DeepPrompts | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.shallow, self.deep = shallow, deep  # (not `prompts`: InferenceSession keeps deep prompts there)

    def step(self, hidden: torch.Tensor, prompts: torch.Tensor | None = None) -> torch.Tensor:
        if self.position:
            return super().step(hidden, prompts)
        with torch.no_grad():
            if prompts is None and self.deep is not None:
                prompts = self.deep.expand(hidden.shape[0], hidden.dtype)
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
    """peft's adapter_config.json for what `model` trains (PROMPT_TUNING or LORA)."""
    seq_cls = model.score is not None
    common = {
        "task_type": "SEQ_CLS" if seq_cls else "CAUSAL_LM", "base_model_name_or_path": base_name,
        "inference_mode": True, "revision": None, "auto_mapping": None,
        "modules_to_save": ["score"] if seq_cls else None,
        "num_labels": model.score.out_features if seq_cls else None,
    }
    if model.lora is not None:
        return {"peft_type": "LORA", "r": model.lora.rank, "lora_alpha": model.lora.alpha,
                "target_modules": list(model.lora.targets), "lora_dropout": 0.0, "bias": "none",
                "fan_in_fan_out": False, "init_lora_weights": True, "use_rslora": False, "use_dora": False,
                "layers_to_transform": None, "layers_pattern": None, "rank_pattern": {}, "alpha_pattern": {},
                **common}
    c, n = model.config, model.family.num_blocks(model.config)
    return {
        "peft_type": "PROMPT_TUNING", "num_virtual_tokens": model.prompts.length if model.prompts else 0,
        "token_dim": int(c.hidden_size), "num_transformer_submodules": 1, "num_layers": n,
        "num_attention_heads": int(getattr(c, "num_attention_heads", None) or c.n_head),
        "prompt_tuning_init": "TEXT" if model.tuning.init_text else "RANDOM",
        "prompt_tuning_init_text": model.tuning.init_text, "tokenizer_name_or_path": base_name,
        "tokenizer_kwargs": None, "pollen_tuning_mode": model.tuning.tuning_mode, **common,
    }


def lora_keys(model) -> list[tuple[str, str]]:
    """[(A key, B key)] in LoraWeights.tensors() order per block: peft's names for this family."""
    from pollen.model.lora import module_paths

    paths = module_paths(model.block_template())
    prefix = PEFT_PREFIX + model.family.block_prefix
    return [(f"{prefix}{i}.{paths[t]}.lora_A.weight", f"{prefix}{i}.{paths[t]}.lora_B.weight")
            for t in model.lora.targets for i in range(model.lora.a[0].shape[0])]


def _tensors(model) -> dict[str, torch.Tensor]:
    """What save_pretrained writes, by peft key."""
    out = {}
    if model.prompts is not None:
        out[PROMPTS_KEY] = model.prompts.weight.detach()
    if model.deep_prompts is not None:
        out[DEEP_KEY] = model.deep_prompts.weight.detach()
    if model.lora is not None:
        pairs = [(a[i], b[i]) for a, b in zip(model.lora.a, model.lora.b) for i in range(a.shape[0])]
        for (ka, kb), (a, b) in zip(lora_keys(model), pairs):
            out[ka], out[kb] = a.detach(), b.detach()
    if model.score is not None:
        out[(PEFT_PREFIX if model.lora is not None else "") + SCORE_KEY] = model.score.weight.detach()
    return {k: v.contiguous() for k, v in out.items()}


def save_adapter(model, out_dir: str | Path) -> Path:
    from safetensors.torch import save_file

    tensors = _tensors(model)
    if not tensors:
        raise TuningError("nothing to save: load the model with tuning_mode='ptune' / 'deep_ptune' (pre_seq_len=N) "
                          "or 'lora' (or a classification head) before save_pretrained")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / ADAPTER_CONFIG).write_text(json.dumps(adapter_config(model, model.name_or_path), indent=2))
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
    if cfg.get("peft_type") not in ("PROMPT_TUNING", "LORA"):
        raise TuningError(f"{path}: peft_type {cfg.get('peft_type')!r} is not supported (PROMPT_TUNING or LORA)")
    with safe_open(str(path / ADAPTER_WEIGHTS), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        meta = f.metadata() or {}
    return cfg, tensors, meta


def tuning_from_adapter(cfg: dict) -> tuple[TuningConfig, int | None]:
    """What from_pretrained(adapter=...) must build before loading: (tuning config, num_labels)."""
    if cfg.get("peft_type") == "LORA":
        try:
            return TuningConfig("lora", lora_rank=int(cfg["r"]), lora_alpha=float(cfg["lora_alpha"]),
                                lora_targets=tuple(cfg["target_modules"])), cfg.get("num_labels")
        except (KeyError, TypeError, ValueError) as exc:
            raise TuningError(f"LoRA adapter_config.json lacks a valid r / lora_alpha / target_modules ({exc})") from exc
    n = int(cfg.get("num_virtual_tokens") or 0)
    mode = cfg.get("pollen_tuning_mode") or "ptune"
    return TuningConfig(mode if n else None, n), cfg.get("num_labels")


def load_adapter(model, path: str | Path) -> None:
    """Copy saved prompts / LoRA (and head) into `model`, checking every shape and the base model first."""
    cfg, tensors, meta = read_adapter(path)
    want = base_fingerprint(model.config)
    if meta.get("pollen_base_fingerprint", want) != want:
        raise TuningError(f"{path} was trained on another base model ({cfg.get('base_model_name_or_path')}); "
                          f"this model is {model.name_or_path}")
    saved_mode = tuning_from_adapter(cfg)[0].tuning_mode
    if saved_mode != model.tuning.tuning_mode and not (saved_mode is None and model.lora is None):
        raise TuningError(f"{path} holds a {saved_mode!r} adapter but the model was loaded with tuning_mode="
                          f"{model.tuning.tuning_mode!r}: load it with from_pretrained(..., adapter=path)")
    if model.lora is not None:
        _check_lora(model, cfg, path)
    else:
        _check_prompts(model, cfg, tensors.get(PROMPTS_KEY), path)
    expected = _tensors(model)
    for key, t in expected.items():
        if key not in tensors and key.endswith(SCORE_KEY):
            continue  # a head trained elsewhere may be absent: the model keeps its own
        got = tensors.get(key)
        if got is None or tuple(got.shape) != tuple(t.shape):
            raise TuningError(f"{path}: {key} has shape {None if got is None else tuple(got.shape)}, expected "
                              f"{tuple(t.shape)}")
    with torch.no_grad():
        for key, t in expected.items():  # _tensors() returns views of the live parameters
            if key in tensors:
                t.copy_(tensors[key])


def _check_lora(model, cfg: dict, path) -> None:
    saved = (int(cfg.get("r", 0)), float(cfg.get("lora_alpha", 0)), tuple(cfg.get("target_modules") or ()))
    have = (model.lora.rank, model.lora.alpha, model.lora.targets)
    if saved != have:
        raise TuningError(f"{path} has LoRA (r, alpha, targets) = {saved} but the model has {have}: load it with "
                          f"from_pretrained(..., adapter=path)")


def _check_prompts(model, cfg: dict, prompts: torch.Tensor | None, path) -> None:
    n_saved = int(cfg.get("num_virtual_tokens") or 0)
    n_model = model.prompts.length if model.prompts is not None else 0
    if n_saved != n_model:
        raise TuningError(f"{path} has num_virtual_tokens={n_saved} but the model has pre_seq_len={n_model}: "
                          f"load it with from_pretrained(..., adapter=path) or pre_seq_len={n_saved}")
