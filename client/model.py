"""HF-like distributed causal LM: embeddings + LM head here, transformer blocks on the swarm.

    model = AutoDistributedModelForCausalLM.from_pretrained(path, initial_peers=["127.0.0.1:5000"])
    out = model.generate(input_ids, max_new_tokens=20)
    with model.inference_session(max_length=64) as sess: ...

Fine-tuning (client-owned parameters, frozen remote blocks; see client/tuning.py):

    model = AutoDistributedModelForCausalLM.from_pretrained(path, initial_peers=peers,
                                                            tuning_mode="ptune", pre_seq_len=8)
    opt = torch.optim.Adam(model.trainable_parameters(), lr=1e-2)
    loss = model(ids, attention_mask=mask, labels=ids).loss; loss.backward(); opt.step()
    model.save_pretrained("my-prompts")            # peft layout
    again = AutoDistributedModelForCausalLM.from_pretrained(path, initial_peers=peers, adapter="my-prompts")

`tuning_mode="deep_ptune", pre_seq_len=N` adds one trainable prompt per remote block;
`tuning_mode="lora", lora_rank=8, lora_alpha=16, lora_targets=("q_proj", "v_proj")` trains
client-owned LoRA weights of every remote block through the servers' Backward.
`active_adapter=CID` names a published LoRA (pollen.adapters) that the servers have loaded:
they apply it to every request and session of this model (several adapters per server).

What to load (client/loading.py): a folder, a manifest CID ("bafy...", "ipfs://CID"; `store=` a
folder or a Kubo URL) or an on-chain version ("pollen://anvil/1"; `deployment=`, `rpc=`, the
servers then come from the registry). Client parts are fetched into `cache_dir`, verified.

Privacy (client/routing.py ServerFilter, client/local_blocks.py):
`allowed_servers=` / `blocked_servers=` ("host:port" or 0x operator/signer addresses, each
optionally "WHO@START:END" for those blocks only; a comma-separated string, a list or a mapping
{who: None | (start, end)}): no route uses a server outside them (NoAllowedRoute otherwise);
`local_blocks=k` or `(k_first, k_last)`: those first / last blocks run here, no server sees the
token embeddings.
"""

from __future__ import annotations

import threading
from pathlib import Path

import torch
from torch import nn

from client.generation import load_generation_config
from client.loading import open_source
from client.local_blocks import LocalBlocks, LocalSession, local_split
from client.remote import RemoteBlocks, RemoteRunner, RemoteTunedBlocks
from client.routing import ServerFilter
from client.session import InferenceSession
from client.swarm import RemoteSwarm
from client.tuning import (PROMPT_MODES, DeepPrompts, LoraWeights, PromptEmbeddings, PromptedSession, TuningConfig,
                           TuningError, causal_lm_loss,
                           check_right_padded, classification_loss, final_norm, last_token_index,
                           load_adapter, read_adapter, save_adapter, tuning_from_adapter)
from client.verify import ReceiptVerifier
from pollen.membership import MembershipSource, StaticMembership
from pollen.model import load_client
from pollen.receipts import ReceiptDomain

DEFAULT_COURT = "0x000000000000000000000000000000000000c0de"


class DistributedModelForCausalLM(nn.Module):
    def __init__(self, config, family, parts: nn.Module, swarm: RemoteSwarm, verifier: ReceiptVerifier,
                 compress: bool = False, tokenizer=None, tuning: TuningConfig = TuningConfig(),
                 num_labels: int | None = None, name_or_path: str = ""):
        super().__init__()
        self.config, self.family, self.parts = config, family, parts
        self.swarm, self.verifier, self.compress, self.tokenizer = swarm, verifier, compress, tokenizer
        self.runner = RemoteRunner(swarm, verifier, compress)
        self.payer = None  # client.payer.Payer, see use_payer
        self.push: bool | None = None  # server-to-server push in inference sessions (None: where supported)
        self.tuning, self.name_or_path = tuning, name_or_path
        mode, n_blocks, hidden = tuning.tuning_mode, family.num_blocks(config), int(config.hidden_size)
        self.prompts = PromptEmbeddings(tuning.pre_seq_len, self._embedding(), tuning, tokenizer) \
            if mode in PROMPT_MODES else None
        self.deep_prompts = DeepPrompts(n_blocks, tuning.pre_seq_len, hidden) if mode == "deep_ptune" else None
        self.lora = LoraWeights(self.block_template(), n_blocks, tuning) if mode == "lora" else None
        self.score = self._make_head(num_labels)
        self.local: LocalBlocks | None = None  # blocks run in this process (local_blocks=)
        self._active = threading.local()  # per thread: the session of its `with model.inference_session()`
        if tuning.tuning_mode is not None:  # only the client-owned tuning parameters train
            self.parts.requires_grad_(False)

    @classmethod
    def from_pretrained(cls, model_path: str | Path, initial_peers=None,
                        membership: MembershipSource | None = None, dtype: str = "float32",
                        compress: bool = False, chain_id: int = 31337, court: str = DEFAULT_COURT,
                        max_clock_skew_s: float = 60.0, terms=None, version_id: int | None = None,
                        tuning_mode: str | None = None, pre_seq_len: int = 0, adapter: str | Path | None = None,
                        num_labels: int | None = None, prompt_init_text: str | None = None,
                        lora_rank: int = 8, lora_alpha: float = 16.0, lora_targets=("q_proj", "v_proj"),
                        active_adapter: str = "", torch_dtype=None, allowed_servers=None, blocked_servers=None,
                        local_blocks=None, store=None, chain=None, deployment=None, rpc: str | None = None,
                        cache_dir: str | Path | None = None, progress: bool = True, push: bool | None = None,
                        device: str = "cpu"):
        """`terms` (client.verify.TermBook over the registry) makes every accepted receipt one
        the court accepts; without it the servers' own Info is trusted (local dev swarms).
        `tuning_mode="ptune", pre_seq_len=N`: N trainable prompt embeddings; `adapter`: a dir
        written by save_pretrained (its prompt length / labels are used unless given);
        `prompt_init_text`: start the prompts from these tokens' embeddings (peft's TEXT init);
        `tuning_mode="deep_ptune"`: per-block prompts too; `"lora"`: LoRA of rank lora_rank on
        lora_targets (leaf module names of a block) in every remote block.
        `model_path`, `store`, `chain` (a pollen.chain.Chain for pollen:// names), `deployment`, `rpc`,
        `cache_dir`: see client/loading.py;
        `allowed_servers`, `blocked_servers`, `local_blocks`: the module doc's Privacy.
        `push`: servers push hidden states straight to the next hop within a decode step (None:
        between hops that support it, False: every hop relayed by the client; client/session.py).
        `device`: where the client parts (embeddings, final norm, LM head) compute: cpu, cuda[:N]
        or auto; hidden states cross to the host for the wire (fine-tuning modes and local
        blocks run on the CPU only, for now)."""
        tuning = TuningConfig(tuning_mode, pre_seq_len, prompt_init_text, lora_rank=lora_rank, lora_alpha=lora_alpha,
                              lora_targets=tuple(lora_targets))
        if adapter is not None and tuning_mode is None:
            tuning, saved_labels = tuning_from_adapter(read_adapter(adapter)[0])
            num_labels = num_labels or saved_labels
        server_filter = ServerFilter.of(allowed_servers, blocked_servers)
        source = open_source(model_path, store, chain, deployment, rpc, cache_dir,
                             progress=progress)
        dtype = _dtype_name(torch_dtype if torch_dtype is not None else dtype)
        device = _client_device(device, tuning_mode, local_blocks)
        config, family, parts = load_client(source.folder, dtype, device)
        local = _local_blocks(source, family.num_blocks(config), local_blocks, tuning, dtype)
        if source.chain is not None:
            from client.onchain import chain_options

            membership, chain_id, court, terms, version_id = chain_options(source.chain, source.version_id,
                                                                           membership, terms)
        membership = membership or StaticMembership(initial_peers or [])
        swarm = RemoteSwarm(membership, family.num_blocks(config), int(config.hidden_size))
        swarm.server_filter = server_filter
        verifier = ReceiptVerifier(ReceiptDomain(chain_id, court), max_clock_skew_s, terms, version_id)
        name = str(model_path) if source.manifest_cid else Path(model_path).name
        model = cls(config, family, parts, swarm, verifier, compress, _tokenizer(source.folder), tuning,
                    num_labels, name)
        model.local = local
        model.generation_config = load_generation_config(source.folder, config)
        if adapter is not None:
            model.load_adapter(adapter)
        model.active_adapter = active_adapter
        model.push = push  # client/session.py: servers push hidden states to the next hop (False: relayed)
        return model

    @property
    def active_adapter(self) -> str:
        """CID of the published LoRA the servers apply ("" = none)."""
        return self.runner.adapter

    @active_adapter.setter
    def active_adapter(self, cid: str) -> None:
        if cid and self.lora is not None:
            raise TuningError("a published adapter cannot be combined with client-owned LoRA (tuning_mode='lora')")
        self.runner.adapter = cid or ""

    # ---- HF-like API -----------------------------------------------------------------------
    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, inputs_embeds: torch.Tensor | None = None, **_ignored):
        """.logits (B, T, V) for whole sequences (prompts stripped); .loss with `labels` (B, T):
        shifted cross-entropy, -100 ignored. Autograd flows through the servers."""
        h = self._remote_hidden(input_ids, attention_mask, inputs_embeds)
        logits = self.logits(h)
        loss = causal_lm_loss(logits, labels.to(logits.device)) if labels is not None else None
        return _output(loss, logits)

    def inference_session(self, max_length: int, batch_size: int = 1) -> InferenceSession:
        """With prompts, their N positions are added to max_length and sent before the first step
        (deep prompts with it). Client LoRA cannot run in inference streams yet (TuningError).
        Inside `with model.inference_session(...)`, generate() uses it without `session=` (Petals)."""
        session = self._new_session(max_length, batch_size)
        session.on_context = self._set_active
        return session

    @property
    def active_session(self):
        """The session this thread's enclosing `with model.inference_session(...)` opened, or None."""
        return getattr(self._active, "session", None)

    def _set_active(self, session) -> None:
        self._active.session = session

    def _new_session(self, max_length: int, batch_size: int):
        if self.lora is not None:
            raise TuningError("inference sessions / generate() with client-owned LoRA are not built: inference "
                              "streams carry no LoRA weights; use model(ids).logits (Forward) instead")
        if self.local is not None:
            return self._local_session(max_length, batch_size)
        if self.prompts is None:
            session = InferenceSession(self.swarm, self.verifier, max_length, batch_size, self.compress,
                                       adapter=self.active_adapter)
        else:
            session = PromptedSession(self.prompts, self.swarm, self.verifier, max_length + self.prompts.length,
                                      batch_size, self.compress, deep=self.deep_prompts, adapter=self.active_adapter)
        session.payer, session.push = self.payer, self.push
        return session

    def _local_session(self, max_length: int, batch_size: int) -> LocalSession:
        """Local first blocks -> a remote session over the middle -> local last blocks."""
        if self.prompts is not None:
            raise TuningError("prompt tuning with local_blocks runs through model(ids) (Forward) only: "
                              "inference sessions would send the prompts past the local blocks")
        start, end = self.local.remote_span
        remote = InferenceSession(self.swarm, self.verifier, max_length, batch_size, self.compress,
                                  start=start, end=end, adapter=self.active_adapter)
        remote.payer, remote.push = self.payer, self.push
        return LocalSession(self.local, remote, max_length, batch_size)

    @property
    def device(self) -> torch.device:
        """Where the client parts compute (`device=` of from_pretrained)."""
        return next(self.parts.parameters()).device

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, T) ids -> (B, T, C) embeddings, computed on the parts' device, returned on the host."""
        return self.parts.embed(input_ids.to(self.device)).cpu()

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """(B, T, C) hidden states after the last block -> (B, T, V) logits on the parts' device."""
        return self.parts.head(h.to(self.device))

    def use_payer(self, payer) -> None:
        """Pay the servers for every verified step (client.payer.Payer); None: free tier."""
        self.payer = self.runner.payer = payer

    @torch.no_grad()
    def generate(self, inputs: torch.Tensor | None = None, generation_config=None, **kwargs) -> torch.Tensor:
        """transformers-style generation (client/generation.py): GenerationConfig fields as keywords."""
        from client.generation import generate

        return generate(self, inputs, generation_config, **kwargs)

    # ---- fine-tuning -----------------------------------------------------------------------
    def trainable_parameters(self) -> list[nn.Parameter]:
        """What an optimizer should get: prompts / head in a tuning mode, else the client parts."""
        return [p for p in self.parameters() if p.requires_grad]

    def save_pretrained(self, out_dir: str | Path) -> Path:
        """The trained prompts (and head) in the peft layout: adapter_config.json + adapter_model.safetensors."""
        return save_adapter(self, out_dir)

    def load_adapter(self, path: str | Path) -> None:
        """Load prompts (and head) saved by save_pretrained; TuningError if they do not fit."""
        load_adapter(self, path)

    def close(self) -> None:
        self.swarm.close()

    # ---- internals -------------------------------------------------------------------------
    def _make_head(self, num_labels: int | None):
        if num_labels is not None:
            raise TuningError("num_labels is for AutoDistributedModelForSequenceClassification")
        return None

    def block_template(self) -> nn.Module:
        """One remote block on the meta device (no memory): its module names and shapes."""
        with torch.device("meta"):
            return self.family.block_cls(self.config)

    def _embedding(self) -> nn.Embedding:
        return next(m for m in self.parts.modules() if isinstance(m, nn.Embedding))

    def _remote_hidden(self, input_ids, attention_mask, inputs_embeds) -> torch.Tensor:
        """(B, T) ids or (B, T, C) embeds -> (B, T, C) after all remote blocks, prompts stripped."""
        check_right_padded(attention_mask)
        h = self.embed(input_ids) if inputs_embeds is None else inputs_embeds.cpu()
        n = 0
        if self.prompts is not None:
            h, n = self.prompts.prepend(h), self.prompts.length  # (B, N + T, C)
        if self.deep_prompts is None and self.lora is None and self.local is not None:
            start, end = self.local.remote_span
            return self.local.last(RemoteBlocks.apply(self.local.first(h), self.runner, start, end))[:, n:]
        if self.deep_prompts is None and self.lora is None:
            return RemoteBlocks.apply(h, self.runner)[:, n:]
        deep = None if self.deep_prompts is None else self.deep_prompts.expand(h.shape[0], h.dtype)  # (L, B, N, C)
        layout, tensors = (None, []) if self.lora is None else (self.lora.layout(), self.lora.tensors())
        return RemoteTunedBlocks.apply(h, deep, self.runner, layout, *tensors)[:, n:]


class DistributedModelForSequenceClassification(DistributedModelForCausalLM):
    """Last-real-token pooling + a linear `score` head (num_labels, C) on the client, as in
    transformers' LlamaForSequenceClassification. Pad on the right (the swarm attends causally)."""

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, inputs_embeds: torch.Tensor | None = None, **_ignored):
        """.logits (B, num_labels); .loss with `labels` (B,): cross-entropy (MSE if num_labels == 1)."""
        h = self._remote_hidden(input_ids, attention_mask, inputs_embeds)  # (B, T, C)
        idx = last_token_index(input_ids, attention_mask, self.config.pad_token_id, tuple(h.shape[:2]))
        pooled = h[torch.arange(h.shape[0]), idx.to(h.device)]  # (B, C)
        logits = self.score(final_norm(self.parts)(pooled))
        loss = classification_loss(logits, labels) if labels is not None else None
        return _output(loss, logits, classifier=True)

    def _make_head(self, num_labels: int | None) -> nn.Linear:
        score = nn.Linear(int(self.config.hidden_size), num_labels or 2, bias=False)
        std = float(getattr(self.config, "initializer_range", 0.02))
        with torch.no_grad():
            score.weight.normal_(0, std, generator=torch.Generator().manual_seed(self.tuning.seed))
        return score


AutoDistributedModelForCausalLM = DistributedModelForCausalLM
AutoDistributedModelForSequenceClassification = DistributedModelForSequenceClassification


def _local_blocks(source, num_blocks: int, local_blocks, tuning: TuningConfig, dtype: str) -> LocalBlocks | None:
    """The blocks `local_blocks=` keeps in this process (fetched first for a CID / pollen:// model)."""
    k_first, k_last = local_split(local_blocks, num_blocks)
    if not (k_first or k_last):
        return None
    if tuning.tuning_mode in ("deep_ptune", "lora"):
        raise TuningError(f"tuning_mode={tuning.tuning_mode!r} trains every remote block: it cannot be combined "
                          f"with local_blocks")
    source.fetch_blocks(0, k_first)
    source.fetch_blocks(num_blocks - k_last, num_blocks)
    return LocalBlocks.load(source.folder, num_blocks, k_first, k_last, dtype)


def _client_device(spec: str, tuning_mode, local_blocks) -> torch.device:
    """The client parts' device; ClientError for what runs on the CPU only so far."""
    from client.errors import ClientError
    from pollen.devices import DeviceError, resolve_device

    try:
        device = resolve_device(spec)
    except DeviceError as exc:
        raise ClientError(str(exc)) from None
    if device.type != "cpu" and (tuning_mode is not None or local_blocks):
        raise ClientError(f"device={spec!r}: fine-tuning modes and local_blocks run the client on the CPU only "
                          "so far; leave device='cpu'")
    return device


def _tokenizer(model_path):
    if not (Path(model_path) / "tokenizer.json").is_file():
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_path), local_files_only=True)


def _dtype_name(dtype) -> str:
    """The client parts' dtype from what a transformers user passes (`torch_dtype=` / `dtype=`:
    a torch.dtype, its name, or "auto" = the checkpoint's float32 client parts)."""
    name = str(dtype).removeprefix("torch.") if isinstance(dtype, torch.dtype) else str(dtype or "float32")
    if name == "auto":
        return "float32"
    if name not in ("float32", "bfloat16", "float16"):
        raise ValueError(f"dtype {dtype!r}: expected float32, bfloat16, float16 or auto")
    return name


def _output(loss, logits, classifier: bool = False):
    """transformers' output object: attribute, key and tuple access like a PreTrainedModel's."""
    from transformers.modeling_outputs import CausalLMOutput, SequenceClassifierOutput

    return (SequenceClassifierOutput if classifier else CausalLMOutput)(loss=loss, logits=logits)
