"""The block server's one config dataclass (filled by `pollen serve` flags or by the daemon)."""

from __future__ import annotations

from dataclasses import dataclass

from node.errors import ConfigError

QUANTIZATIONS = ("none", "int8", "nf4")


@dataclass
class ServerConfig:
    model_path: str  # checkpoint dir: transformers safetensors or a Pollen split dir
    start: int  # first block served (inclusive)
    end: int  # last block served (exclusive)
    host: str = "127.0.0.1"  # interface to listen on
    port: int = 0  # TCP port; 0 picks a free one (printed in the ready line)
    dtype: str = "float32"  # compute and wire dtype: float32 | bfloat16 | float16 | auto (see pollen/devices.py)
    device: str = "cpu"  # where weights, KV caches and compute live: cpu | cuda[:N] | auto
    quantization: str = "none"  # weights: none | int8 | nf4 (bitsandbytes)
    max_length: int = 2048  # longest inference session (tokens) a client may declare
    max_batch: int = 8  # largest batch per request / session
    max_tokens_per_request: int = 8192  # batch x seq limit for one forward/backward call
    cache_memory_mb: float = 512.0  # KV-cache budget shared by all sessions
    max_sessions: int = 64  # concurrent inference sessions
    max_batch_sessions: int = 8  # queued compatible decode steps run as one batch (1 = never batch)
    max_batch_wait_ms: float = 2.0  # longest wait for the steps of other active sessions (0 = none)
    session_timeout_s: float = 300.0  # idle inference sessions are closed after this
    max_message_bytes: int = 64 << 20  # larger gRPC messages are refused by the transport
    workers: int = 16  # gRPC handler threads (bounds concurrent requests)
    torch_threads: int = 0  # torch intra-op threads; 0 keeps torch's default
    chain_id: int = 31337  # receipt EIP-712 domain: chain id
    court: str = "0x000000000000000000000000000000000000c0de"  # DisputeCourt address (domain)
    signer_key: str = ""  # hex private key signing receipts; empty = fresh random dev key
    operator: str = ""  # registered operator address in receipts; empty = signer address
    version_id: int = 0  # ModelVersionRegistry id of the served model version
    term: int = 0  # ServerRegistry term index receipts name (the daemon sets it after registering)
    adapters: tuple[str, ...] = ()  # CIDs of published LoRA adapters to load at start (pollen.adapters)
    adapter_store: str = ""  # content store they are fetched from (open_store spec; "" = default)
    base_manifest: str = ""  # manifest CID of the served version, if known: adapters for another are refused
    # FAULT INJECTION (tests and the demo only; off by default): `fault` names a cheat
    # (node/faults.py: skip:B, swap:B, noise:B:S, steer:B:S, nan:B, quant:MODE, garble:S) applied
    # to a fraction `fault_rate` of steps, still signed; fault_rate > 0 with no `fault` = garble.
    fault: str = ""
    fault_rate: float = 0.0
    fault_scale: float = 0.1  # garble's relative size when `fault` is empty

    def fault_spec(self) -> str:
        if self.fault:
            return self.fault
        return f"garble:{self.fault_scale}" if self.fault_rate > 0 else ""

    def validate(self) -> "ServerConfig":
        if not 0 <= self.start < self.end:
            raise ConfigError(f"invalid span [{self.start}, {self.end})")
        from pollen.devices import DeviceError, resolve_device, resolve_dtype

        try:  # "auto" resolves here, once: everything downstream sees a concrete device and dtype
            device = resolve_device(self.device)
            self.device, self.dtype = str(device), resolve_dtype(self.dtype, device)
        except DeviceError as exc:
            raise ConfigError(str(exc)) from exc
        if self.quantization not in QUANTIZATIONS:
            raise ConfigError(f"quantization must be one of {QUANTIZATIONS}")
        for name in ("max_length", "max_batch", "max_sessions", "max_batch_sessions", "workers", "max_tokens_per_request"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive")
        if not 0.0 <= self.max_batch_wait_ms <= 1000.0:
            raise ConfigError("max_batch_wait_ms must be in [0, 1000]")
        if not 0.0 <= self.fault_rate <= 1.0 or self.fault_scale < 0:
            raise ConfigError("fault_rate must be in [0, 1] and fault_scale >= 0")
        if not 0 <= self.port < 65536:
            raise ConfigError(f"invalid port {self.port}")
        from node.faults import Fault

        fault = Fault.parse(self.fault_spec())
        if fault is not None:
            fault.check_span(self.start, self.end)
        return self
