"""HF-like distributed causal LM: embeddings + LM head here, transformer blocks on the swarm.

    model = AutoDistributedModelForCausalLM.from_pretrained(path, initial_peers=["127.0.0.1:5000"])
    out = model.generate(input_ids, max_new_tokens=20)
    with model.inference_session(max_length=64) as sess: ...
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

from client.remote import RemoteBlocks, RemoteRunner
from client.session import InferenceSession
from client.swarm import RemoteSwarm
from client.verify import ReceiptVerifier
from pollen.membership import MembershipSource, StaticMembership
from pollen.model import load_client
from pollen.receipts import ReceiptDomain

DEFAULT_COURT = "0x000000000000000000000000000000000000c0de"


class DistributedModelForCausalLM(nn.Module):
    def __init__(self, config, family, parts: nn.Module, swarm: RemoteSwarm, verifier: ReceiptVerifier,
                 compress: bool = False, tokenizer=None):
        super().__init__()
        self.config, self.family, self.parts = config, family, parts
        self.swarm, self.verifier, self.compress, self.tokenizer = swarm, verifier, compress, tokenizer
        self.runner = RemoteRunner(swarm, verifier, compress)

    @classmethod
    def from_pretrained(cls, model_path: str | Path, initial_peers=None,
                        membership: MembershipSource | None = None, dtype: str = "float32",
                        compress: bool = False, chain_id: int = 31337, court: str = DEFAULT_COURT,
                        max_clock_skew_s: float = 60.0, terms=None, version_id: int | None = None):
        """`terms` (client.verify.TermBook over the registry) makes every accepted receipt one
        the court accepts; without it the servers' own Info is trusted (local dev swarms)."""
        config, family, parts = load_client(model_path, dtype)
        membership = membership or StaticMembership(initial_peers or [])
        swarm = RemoteSwarm(membership, family.num_blocks(config), int(config.hidden_size))
        verifier = ReceiptVerifier(ReceiptDomain(chain_id, court), max_clock_skew_s, terms, version_id)
        return cls(config, family, parts, swarm, verifier, compress, _tokenizer(model_path))

    # ---- HF-like API -----------------------------------------------------------------------
    def forward(self, input_ids: torch.Tensor | None = None, inputs_embeds: torch.Tensor | None = None,
                **_ignored):
        """Logits (B, T, V) for whole sequences; autograd flows through the servers."""
        h = self.parts.embed(input_ids) if inputs_embeds is None else inputs_embeds
        h = RemoteBlocks.apply(h, self.runner)
        return SimpleNamespace(logits=self.parts.head(h))

    def inference_session(self, max_length: int, batch_size: int = 1) -> InferenceSession:
        return InferenceSession(self.swarm, self.verifier, max_length, batch_size, self.compress)

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, max_new_tokens: int = 20, **kwargs) -> torch.Tensor:
        from client.generation import generate

        return generate(self, input_ids, max_new_tokens=max_new_tokens, **kwargs)

    def close(self) -> None:
        self.swarm.close()


AutoDistributedModelForCausalLM = DistributedModelForCausalLM


def _tokenizer(model_path):
    if not (Path(model_path) / "tokenizer.json").is_file():
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_path), local_files_only=True)
