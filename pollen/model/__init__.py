"""Model partitioning: blocks 0..N-1 served by servers, client parts kept by the client."""

from pollen.model.family import BLOOM, LLAMA, Family, ModelError, family_of
from pollen.model.loading import load_client, load_config, load_span
from pollen.model.lora import Lora, LoraError
from pollen.model.span import SpanCache, SpanModel
from pollen.shards import split_checkpoint

__all__ = ["BLOOM", "LLAMA", "Family", "Lora", "LoraError", "ModelError", "SpanCache", "SpanModel", "family_of",
           "load_client", "load_config", "load_span", "split_checkpoint"]
