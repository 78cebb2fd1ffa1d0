from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Compression(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NONE: _ClassVar[Compression]
    BLOCKWISE_8BIT: _ClassVar[Compression]
NONE: Compression
BLOCKWISE_8BIT: Compression

class Tensor(_message.Message):
    __slots__ = ("dtype", "shape", "data", "compression", "scales", "block_size")
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    COMPRESSION_FIELD_NUMBER: _ClassVar[int]
    SCALES_FIELD_NUMBER: _ClassVar[int]
    BLOCK_SIZE_FIELD_NUMBER: _ClassVar[int]
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    compression: Compression
    scales: bytes
    block_size: int
    def __init__(self, dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ..., compression: _Optional[_Union[Compression, str]] = ..., scales: _Optional[bytes] = ..., block_size: _Optional[int] = ...) -> None: ...

class Receipt(_message.Message):
    __slots__ = ("server", "version_id", "first_block", "last_block", "session_id", "step", "input_hash", "output_hash", "issued_at", "signature", "term", "kind", "blocks_root")
    SERVER_FIELD_NUMBER: _ClassVar[int]
    VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    FIRST_BLOCK_FIELD_NUMBER: _ClassVar[int]
    LAST_BLOCK_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    INPUT_HASH_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_HASH_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_ROOT_FIELD_NUMBER: _ClassVar[int]
    server: str
    version_id: str
    first_block: int
    last_block: int
    session_id: bytes
    step: int
    input_hash: bytes
    output_hash: bytes
    issued_at: int
    signature: bytes
    term: int
    kind: int
    blocks_root: bytes
    def __init__(self, server: _Optional[str] = ..., version_id: _Optional[str] = ..., first_block: _Optional[int] = ..., last_block: _Optional[int] = ..., session_id: _Optional[bytes] = ..., step: _Optional[int] = ..., input_hash: _Optional[bytes] = ..., output_hash: _Optional[bytes] = ..., issued_at: _Optional[int] = ..., signature: _Optional[bytes] = ..., term: _Optional[int] = ..., kind: _Optional[int] = ..., blocks_root: _Optional[bytes] = ...) -> None: ...

class LoraTarget(_message.Message):
    __slots__ = ("module", "a", "b")
    MODULE_FIELD_NUMBER: _ClassVar[int]
    A_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    module: str
    a: Tensor
    b: Tensor
    def __init__(self, module: _Optional[str] = ..., a: _Optional[_Union[Tensor, _Mapping]] = ..., b: _Optional[_Union[Tensor, _Mapping]] = ...) -> None: ...

class Lora(_message.Message):
    __slots__ = ("rank", "alpha", "targets")
    RANK_FIELD_NUMBER: _ClassVar[int]
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    rank: int
    alpha: float
    targets: _containers.RepeatedCompositeFieldContainer[LoraTarget]
    def __init__(self, rank: _Optional[int] = ..., alpha: _Optional[float] = ..., targets: _Optional[_Iterable[_Union[LoraTarget, _Mapping]]] = ...) -> None: ...

class InfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class InfoResponse(_message.Message):
    __slots__ = ("model", "family", "num_blocks", "start", "end", "dtype", "quantization", "throughput", "free_cache_tokens", "active_sessions", "load", "hidden_size", "operator", "signer", "version_id", "max_length", "chain_id", "court", "max_message_bytes", "adapters", "price_wei", "credit_limit_wei", "free_tier", "escrow", "push")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    NUM_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    QUANTIZATION_FIELD_NUMBER: _ClassVar[int]
    THROUGHPUT_FIELD_NUMBER: _ClassVar[int]
    FREE_CACHE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    LOAD_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_SIZE_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    SIGNER_FIELD_NUMBER: _ClassVar[int]
    VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_LENGTH_FIELD_NUMBER: _ClassVar[int]
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    COURT_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    ADAPTERS_FIELD_NUMBER: _ClassVar[int]
    PRICE_WEI_FIELD_NUMBER: _ClassVar[int]
    CREDIT_LIMIT_WEI_FIELD_NUMBER: _ClassVar[int]
    FREE_TIER_FIELD_NUMBER: _ClassVar[int]
    ESCROW_FIELD_NUMBER: _ClassVar[int]
    PUSH_FIELD_NUMBER: _ClassVar[int]
    model: str
    family: str
    num_blocks: int
    start: int
    end: int
    dtype: str
    quantization: str
    throughput: float
    free_cache_tokens: int
    active_sessions: int
    load: float
    hidden_size: int
    operator: str
    signer: str
    version_id: str
    max_length: int
    chain_id: int
    court: str
    max_message_bytes: int
    adapters: _containers.RepeatedScalarFieldContainer[str]
    price_wei: str
    credit_limit_wei: str
    free_tier: bool
    escrow: str
    push: bool
    def __init__(self, model: _Optional[str] = ..., family: _Optional[str] = ..., num_blocks: _Optional[int] = ..., start: _Optional[int] = ..., end: _Optional[int] = ..., dtype: _Optional[str] = ..., quantization: _Optional[str] = ..., throughput: _Optional[float] = ..., free_cache_tokens: _Optional[int] = ..., active_sessions: _Optional[int] = ..., load: _Optional[float] = ..., hidden_size: _Optional[int] = ..., operator: _Optional[str] = ..., signer: _Optional[str] = ..., version_id: _Optional[str] = ..., max_length: _Optional[int] = ..., chain_id: _Optional[int] = ..., court: _Optional[str] = ..., max_message_bytes: _Optional[int] = ..., adapters: _Optional[_Iterable[str]] = ..., price_wei: _Optional[str] = ..., credit_limit_wei: _Optional[str] = ..., free_tier: _Optional[bool] = ..., escrow: _Optional[str] = ..., push: _Optional[bool] = ...) -> None: ...

class Payment(_message.Message):
    __slots__ = ("client", "session_sig", "voucher")
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    SESSION_SIG_FIELD_NUMBER: _ClassVar[int]
    VOUCHER_FIELD_NUMBER: _ClassVar[int]
    client: str
    session_sig: bytes
    voucher: bytes
    def __init__(self, client: _Optional[str] = ..., session_sig: _Optional[bytes] = ..., voucher: _Optional[bytes] = ...) -> None: ...

class ForwardRequest(_message.Message):
    __slots__ = ("session_id", "start", "end", "hidden", "compress_output", "prompts", "lora", "adapter", "payment")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_FIELD_NUMBER: _ClassVar[int]
    COMPRESS_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    LORA_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    session_id: bytes
    start: int
    end: int
    hidden: Tensor
    compress_output: bool
    prompts: Tensor
    lora: Lora
    adapter: str
    payment: Payment
    def __init__(self, session_id: _Optional[bytes] = ..., start: _Optional[int] = ..., end: _Optional[int] = ..., hidden: _Optional[_Union[Tensor, _Mapping]] = ..., compress_output: _Optional[bool] = ..., prompts: _Optional[_Union[Tensor, _Mapping]] = ..., lora: _Optional[_Union[Lora, _Mapping]] = ..., adapter: _Optional[str] = ..., payment: _Optional[_Union[Payment, _Mapping]] = ...) -> None: ...

class ForwardResponse(_message.Message):
    __slots__ = ("hidden", "receipt", "sketches")
    HIDDEN_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    SKETCHES_FIELD_NUMBER: _ClassVar[int]
    hidden: Tensor
    receipt: Receipt
    sketches: Tensor
    def __init__(self, hidden: _Optional[_Union[Tensor, _Mapping]] = ..., receipt: _Optional[_Union[Receipt, _Mapping]] = ..., sketches: _Optional[_Union[Tensor, _Mapping]] = ...) -> None: ...

class BackwardRequest(_message.Message):
    __slots__ = ("session_id", "start", "end", "hidden", "grad_output", "prompts", "lora", "adapter", "payment")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_FIELD_NUMBER: _ClassVar[int]
    GRAD_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    LORA_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    session_id: bytes
    start: int
    end: int
    hidden: Tensor
    grad_output: Tensor
    prompts: Tensor
    lora: Lora
    adapter: str
    payment: Payment
    def __init__(self, session_id: _Optional[bytes] = ..., start: _Optional[int] = ..., end: _Optional[int] = ..., hidden: _Optional[_Union[Tensor, _Mapping]] = ..., grad_output: _Optional[_Union[Tensor, _Mapping]] = ..., prompts: _Optional[_Union[Tensor, _Mapping]] = ..., lora: _Optional[_Union[Lora, _Mapping]] = ..., adapter: _Optional[str] = ..., payment: _Optional[_Union[Payment, _Mapping]] = ...) -> None: ...

class BackwardResponse(_message.Message):
    __slots__ = ("grad_input", "receipt", "sketches", "grad_prompts", "grad_lora")
    GRAD_INPUT_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    SKETCHES_FIELD_NUMBER: _ClassVar[int]
    GRAD_PROMPTS_FIELD_NUMBER: _ClassVar[int]
    GRAD_LORA_FIELD_NUMBER: _ClassVar[int]
    grad_input: Tensor
    receipt: Receipt
    sketches: Tensor
    grad_prompts: Tensor
    grad_lora: Lora
    def __init__(self, grad_input: _Optional[_Union[Tensor, _Mapping]] = ..., receipt: _Optional[_Union[Receipt, _Mapping]] = ..., sketches: _Optional[_Union[Tensor, _Mapping]] = ..., grad_prompts: _Optional[_Union[Tensor, _Mapping]] = ..., grad_lora: _Optional[_Union[Lora, _Mapping]] = ...) -> None: ...

class SessionOpen(_message.Message):
    __slots__ = ("session_id", "start", "end", "max_length", "batch_size", "compress_output", "adapter")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    MAX_LENGTH_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    COMPRESS_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_FIELD_NUMBER: _ClassVar[int]
    session_id: bytes
    start: int
    end: int
    max_length: int
    batch_size: int
    compress_output: bool
    adapter: str
    def __init__(self, session_id: _Optional[bytes] = ..., start: _Optional[int] = ..., end: _Optional[int] = ..., max_length: _Optional[int] = ..., batch_size: _Optional[int] = ..., compress_output: _Optional[bool] = ..., adapter: _Optional[str] = ...) -> None: ...

class InferenceRequest(_message.Message):
    __slots__ = ("open", "hidden", "step", "prompts", "payment", "push", "pushed", "fallback")
    OPEN_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    PUSH_FIELD_NUMBER: _ClassVar[int]
    PUSHED_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_FIELD_NUMBER: _ClassVar[int]
    open: SessionOpen
    hidden: Tensor
    step: int
    prompts: Tensor
    payment: Payment
    push: PushTo
    pushed: PushedInput
    fallback: bool
    def __init__(self, open: _Optional[_Union[SessionOpen, _Mapping]] = ..., hidden: _Optional[_Union[Tensor, _Mapping]] = ..., step: _Optional[int] = ..., prompts: _Optional[_Union[Tensor, _Mapping]] = ..., payment: _Optional[_Union[Payment, _Mapping]] = ..., push: _Optional[_Union[PushTo, _Mapping]] = ..., pushed: _Optional[_Union[PushedInput, _Mapping]] = ..., fallback: _Optional[bool] = ...) -> None: ...

class InferenceResponse(_message.Message):
    __slots__ = ("hidden", "receipt", "sketches", "push_error", "pushed")
    HIDDEN_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    SKETCHES_FIELD_NUMBER: _ClassVar[int]
    PUSH_ERROR_FIELD_NUMBER: _ClassVar[int]
    PUSHED_FIELD_NUMBER: _ClassVar[int]
    hidden: Tensor
    receipt: Receipt
    sketches: Tensor
    push_error: str
    pushed: bool
    def __init__(self, hidden: _Optional[_Union[Tensor, _Mapping]] = ..., receipt: _Optional[_Union[Receipt, _Mapping]] = ..., sketches: _Optional[_Union[Tensor, _Mapping]] = ..., push_error: _Optional[str] = ..., pushed: _Optional[bool] = ...) -> None: ...

class PushTo(_message.Message):
    __slots__ = ("address", "session_id", "step", "token", "wait_ms")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    address: str
    session_id: bytes
    step: int
    token: bytes
    wait_ms: int
    def __init__(self, address: _Optional[str] = ..., session_id: _Optional[bytes] = ..., step: _Optional[int] = ..., token: _Optional[bytes] = ..., wait_ms: _Optional[int] = ...) -> None: ...

class PushedInput(_message.Message):
    __slots__ = ("token_hash", "wait_ms")
    TOKEN_HASH_FIELD_NUMBER: _ClassVar[int]
    WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    token_hash: bytes
    wait_ms: int
    def __init__(self, token_hash: _Optional[bytes] = ..., wait_ms: _Optional[int] = ...) -> None: ...

class PushRequest(_message.Message):
    __slots__ = ("session_id", "step", "hidden", "token", "wait_ms")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    session_id: bytes
    step: int
    hidden: Tensor
    token: bytes
    wait_ms: int
    def __init__(self, session_id: _Optional[bytes] = ..., step: _Optional[int] = ..., hidden: _Optional[_Union[Tensor, _Mapping]] = ..., token: _Optional[bytes] = ..., wait_ms: _Optional[int] = ...) -> None: ...

class PushResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
