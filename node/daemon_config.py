"""The operator daemon's one config object: defaults < optional file < env (POLLEN_*) < flags.

Keys are never stored in this object's printable form: `redacted()` is what gets logged, and
the operator / signer keys come from a key file, an eth-account keystore (+ password env) or an
env variable — never a command-line value (visible to every user of the box via `ps`).
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from node.errors import ConfigError

ENV_PREFIX = "POLLEN_NODE_"


@dataclass
class DaemonConfig:
    deployment: str = ""  # deployment file; empty = deployments/<network>.json (deployments/demo.json without network)
    rpc: str = ""  # JSON-RPC URL; empty = the one in the deployment file
    network: str = ""  # network name (pollen.networks: anvil, gnosis-chiado, gnosis, filecoin-calibration, ...)
    operator_key_file: str = ""  # file holding the operator's hex private key
    keystore: str = ""  # alternatively an eth-account / Ape keystore JSON (password in env POLLEN_KEYSTORE_PASSWORD)
    signer_key_file: str = ""  # hot receipt-signing key file; empty = the operator key signs too
    version_id: int = 0  # ModelVersionRegistry version to serve
    blocks: str = "auto"  # span "START:END" (end exclusive) or "auto" (block selection)
    span_length: int = 0  # with blocks=auto: blocks to serve; 0 = the whole model
    host: str = "127.0.0.1"  # interface the block server listens on
    port: int = 0  # block server port; 0 = a free one (re-registers the endpoint on restart)
    public_host: str = ""  # host written to the registry; empty = `host`
    dtype: str = "float32"  # compute dtype: float32 | bfloat16 | float16 | auto (pollen/devices.py)
    device: str = "cpu"  # auto | cpu | cuda[:N]: where the served blocks compute
    torch_threads: int = 0  # torch intra-op threads; 0 = torch default
    max_length: int = 2048  # longest session (prefix + generated tokens) the server accepts
    cache_mb: float = 512.0  # KV-cache budget shared by all sessions, MiB
    session_timeout_s: float = 300.0  # an idle inference session's KV cache is freed after this
    max_batch_sessions: int = 8  # concurrent sessions' decode steps run as one batch (1 = never batch)
    max_batch_wait_ms: float = 2.0  # a step waits at most this for other active sessions' steps
    store: str = ".cache/store"  # content store: a folder (embedded store) or a Kubo RPC URL
    cache_dir: str = ".cache/node"  # verified shard cache (blobs by CID)
    state_dir: str = ""  # daemon state (last block, votes, audits); empty = .cache/node/<operator>
    stake: float = 0.0  # stake to hold, in native currency; 0 = the contract's minimum
    poll_interval_s: float = 1.0  # chain event polling period
    restake: bool = False  # after a slash/deactivation: top up and re-register (else leave and exit)
    leave_on_exit: bool = True  # on SIGTERM: leave the registry
    unstake_on_exit: bool = True  # on SIGTERM: request unstake of the whole stake
    follow_successor: bool = False  # when our version is deprecated with a successor: move to it
    rebalance_interval_s: float = 0.0  # check swarm coverage this often and move the span if too uneven; 0 = never
    advertise_throughput: float = 0.0  # tokens/s announced in Info and the registry; 0 = measured
    price_wei: int = 0  # pay-per-use price, wei per block per token (0 = free); set in PaymentEscrow
    credit_limit_wei: int = 0  # unpaid wei a payer may owe; 0 = one largest step at the price
    free_tier: bool = True  # also serve requests without a payment (after paid work)
    redeem_interval_s: float = 30.0  # redeem held vouchers this often (and on exit)
    adapters: str = ""  # comma-separated CIDs of published LoRA adapters to serve by name (from `store`)
    fault: str = ""  # FAULT INJECTION (tests/demo): a cheat from node/faults.py, e.g. "skip:27"
    fault_rate: float = 0.0  # FAULT INJECTION: fraction of steps cheated, still signed
    fault_scale: float = 0.1  # relative size of injected errors
    log_level: str = "INFO"  # DEBUG | INFO | WARNING

    # ---- loading ---------------------------------------------------------------------------
    @classmethod
    def load(cls, file: str | None = None, env: dict | None = None, **flags) -> "DaemonConfig":
        """Defaults, then the file (TOML or JSON), then POLLEN_NODE_* env, then non-None flags."""
        values: dict = {}
        if file:
            values.update(_read_file(file))
        values.update(_from_env(os.environ if env is None else env))
        values.update({k: v for k, v in flags.items() if v is not None})
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return cls(**{k: _coerce(k, v) for k, v in values.items()}).validate()

    def validate(self) -> "DaemonConfig":
        from pollen.networks import NetworkError, resolve_deployment

        try:
            self.deployment = str(resolve_deployment(self.network or None, self.deployment or None))
        except NetworkError as exc:
            raise ConfigError(str(exc)) from exc
        if self.version_id <= 0:
            raise ConfigError("version_id must be a published version id (> 0)")
        if self.blocks != "auto":
            parse_blocks(self.blocks)
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ConfigError(f"dtype must be auto, float32, bfloat16 or float16, not {self.dtype!r}")
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ConfigError("fault_rate must be in [0, 1]")
        from node.faults import Fault

        Fault.parse(self.fault)  # a bad spec fails at start-up, naming the problem
        if self.poll_interval_s <= 0 or min(self.stake, self.span_length, self.rebalance_interval_s) < 0:
            raise ConfigError("poll_interval_s must be > 0; stake, span_length, rebalance_interval_s >= 0")
        if min(self.price_wei, self.credit_limit_wei) < 0 or self.redeem_interval_s <= 0:
            raise ConfigError("price_wei and credit_limit_wei must be >= 0, redeem_interval_s > 0")
        if self.max_length < 1 or self.cache_mb <= 0 or self.session_timeout_s <= 0:
            raise ConfigError("max_length must be >= 1, cache_mb and session_timeout_s > 0")
        if self.max_batch_sessions < 1 or self.max_batch_wait_ms < 0:
            raise ConfigError("max_batch_sessions must be >= 1 and max_batch_wait_ms >= 0")
        if not (self.operator_key_file or self.keystore or os.environ.get("POLLEN_OPERATOR_KEY")):
            raise ConfigError("no operator key: set operator_key_file, keystore or env POLLEN_OPERATOR_KEY")
        return self

    def redacted(self) -> dict:
        """Printable settings (paths to key files, never key material)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    # ---- keys ------------------------------------------------------------------------------
    def operator_key(self) -> str:
        if self.keystore:
            return _keystore_key(self.keystore)
        if self.operator_key_file:
            return _key_file(self.operator_key_file)
        return _check_key(os.environ.get("POLLEN_OPERATOR_KEY", ""), "env POLLEN_OPERATOR_KEY")

    def signer_key(self) -> str:
        return _key_file(self.signer_key_file) if self.signer_key_file else self.operator_key()


def parse_blocks(text: str) -> tuple[int, int]:
    try:
        a, b = (int(v) for v in text.split(":"))
    except ValueError as exc:
        raise ConfigError(f"blocks must be START:END or auto, not {text!r}") from exc
    if not 0 <= a < b:
        raise ConfigError(f"invalid span [{a}, {b})")
    return a, b


def _read_file(path: str) -> dict:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path} ({exc.strerror})") from exc
    try:
        return json.loads(text) if p.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid {'JSON' if p.suffix == '.json' else 'TOML'}: {exc}") from exc


def _from_env(env) -> dict:
    names = {f.name for f in fields(DaemonConfig)}
    out = {}
    for key, value in env.items():
        if key.startswith(ENV_PREFIX) and key[len(ENV_PREFIX):].lower() in names:
            out[key[len(ENV_PREFIX):].lower()] = value
    return out


def _coerce(name: str, value):
    kind = {f.name: f.type for f in fields(DaemonConfig)}[name]
    try:
        if kind == "bool" and isinstance(value, str):
            if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(value)
            return value.lower() in ("1", "true", "yes")
        return {"int": int, "float": float, "str": str, "bool": bool}.get(kind, lambda v: v)(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name}: {value!r} is not a valid {kind}") from exc


def _check_key(text: str, where: str) -> str:
    key = text.strip().removeprefix("0x")
    if len(key) != 64 or any(c not in "0123456789abcdefABCDEF" for c in key):
        raise ConfigError(f"{where} does not hold a 32-byte hex private key")
    return "0x" + key


def _key_file(path: str) -> str:
    try:
        return _check_key(Path(path).read_text(), f"key file {path}")
    except OSError as exc:
        raise ConfigError(f"cannot read key file {path} ({exc.strerror})") from exc


def _keystore_key(path: str) -> str:
    from eth_account import Account

    password = os.environ.get("POLLEN_KEYSTORE_PASSWORD")
    if password is None:
        raise ConfigError("keystore given but env POLLEN_KEYSTORE_PASSWORD is not set")
    try:
        return "0x" + bytes(Account.decrypt(json.loads(Path(path).read_text()), password)).hex()
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot decrypt keystore {path} ({exc})") from exc
