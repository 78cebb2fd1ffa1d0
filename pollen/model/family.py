"""Model families Pollen can partition: where each family keeps its blocks and client parts."""

from __future__ import annotations

from dataclasses import dataclass

from pollen.errors import PollenError
from pollen.model import bloom, llama


class ModelError(PollenError):
    """A checkpoint Pollen cannot partition or load."""

    def __init__(self, problem: str):
        super().__init__(f"model: {problem}")


@dataclass(frozen=True)
class Family:
    name: str
    block_prefix: str  # checkpoint key prefix of block i is f"{block_prefix}{i}."
    client_prefixes: tuple[tuple[str, str], ...]  # (checkpoint prefix, client-module prefix)
    block_cls: type
    position_cls: type  # per-span positional context (rope table / alibi)
    client_cls: type

    def num_blocks(self, config) -> int:
        return int(config.num_hidden_layers if self.name == "llama" else config.n_layer)

    def kv_heads_dim(self, config) -> tuple[int, int]:
        """(heads stored in the KV cache, head dim)."""
        if self.name == "llama":
            hd = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
            return int(config.num_key_value_heads), int(hd)
        return int(config.n_head), int(config.hidden_size // config.n_head)


LLAMA = Family(
    name="llama",
    block_prefix="model.layers.",
    client_prefixes=(("model.embed_tokens.", "embed_tokens."), ("model.norm.", "norm."),
                     ("lm_head.", "lm_head.")),
    block_cls=llama.LlamaBlock,
    position_cls=llama.RopeTable,
    client_cls=llama.LlamaClient,
)
BLOOM = Family(
    name="bloom",
    block_prefix="transformer.h.",
    client_prefixes=(("transformer.word_embeddings.", "word_embeddings."),
                     ("transformer.word_embeddings_layernorm.", "word_embeddings_layernorm."),
                     ("transformer.ln_f.", "ln_f."), ("lm_head.", "lm_head.")),
    block_cls=bloom.BloomBlock,
    position_cls=bloom.AlibiTable,
    client_cls=bloom.BloomClient,
)
_BY_MODEL_TYPE = {"llama": LLAMA, "bloom": BLOOM}


def family_of(config) -> Family:
    model_type = getattr(config, "model_type", None)
    if model_type not in _BY_MODEL_TYPE:
        raise ModelError(f"unsupported model_type {model_type!r} (supported: {sorted(_BY_MODEL_TYPE)})")
    return _BY_MODEL_TYPE[model_type]
