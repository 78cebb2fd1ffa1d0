"""`pollen serve`: run one block server process."""

from __future__ import annotations

import os
from pathlib import Path

import click


def _parse_blocks(ctx, param, value: str) -> tuple[int, int] | None:
    if value == "auto":
        return None
    try:
        a, b = value.split(":")
        return int(a), int(b)
    except ValueError as exc:
        raise click.BadParameter("expected START:END, e.g. 0:15") from exc


@click.command("serve")
@click.option("--model", "model_path", required=True, type=click.Path(exists=True, file_okay=False),
              help="checkpoint dir (transformers safetensors or a Pollen split dir)")
@click.option("--blocks", required=True, callback=_parse_blocks,
              help="span START:END (end exclusive), or `auto` to take the weakest-covered span")
@click.option("--span-length", default=0, help="with --blocks auto: how many blocks to serve")
@click.option("--peers", default="", help="with --blocks auto: comma-separated host:port of the swarm")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=0, show_default=True, help="0 picks a free port")
@click.option("--dtype", default="float32", show_default=True,
              type=click.Choice(["auto", "float32", "bfloat16", "float16"]),
              help="compute dtype; auto: bfloat16 (float16 on older GPUs) on CUDA, float32 on CPU")
@click.option("--device", default="cpu", show_default=True,
              help="auto | cpu | cuda | cuda:N: where weights, KV caches and compute live")
@click.option("--quant", "quantization", default="none", type=click.Choice(["none", "int8", "nf4"]),
              show_default=True)
@click.option("--max-length", default=2048, show_default=True)
@click.option("--cache-mb", "cache_memory_mb", default=512.0, show_default=True)
@click.option("--session-timeout", "session_timeout_s", default=300.0, show_default=True)
@click.option("--max-batch-sessions", default=8, show_default=True,
              help="run up to N sessions' queued decode steps as one batch (1 disables batching)")
@click.option("--max-batch-wait-ms", default=2.0, show_default=True,
              help="while other sessions are active, wait at most this long for their steps to batch")
@click.option("--max-message-mb", default=64, show_default=True)
@click.option("--torch-threads", default=0, show_default=True)
@click.option("--chain-id", default=31337, show_default=True)
@click.option("--court", default="0x000000000000000000000000000000000000c0de", show_default=True)
@click.option("--signer-key-file", default="", type=click.Path(dir_okay=False),
              help="file holding the hex receipt-signing key (or env POLLEN_SIGNER_KEY); "
              "default: a random dev key")
@click.option("--operator", default="", help="operator address in receipts (default: signer)")
@click.option("--version-id", default=0, show_default=True)
@click.option("--adapter", "adapters", multiple=True,
              help="CID of a published LoRA adapter to load (repeatable); clients name it per session")
@click.option("--adapter-store", default="", help="content store for --adapter (IPFS URL or folder)")
@click.option("--base-manifest", default="", help="manifest CID of the served version: adapters for "
              "another base are refused")
@click.option("--fault", default="", help="FAULT INJECTION for tests/demos: a cheat (node/faults.py), "
              "e.g. skip:27, noise:20:0.1, quant:int8; applied to --fault-rate of steps (default 1 with --fault)")
@click.option("--fault-rate", default=None, type=float,
              help="FAULT INJECTION for tests/demos: fraction of steps cheated (still signed)")
@click.option("--fault-scale", default=0.1, show_default=True, help="relative size of injected errors")
def serve(model_path, blocks, span_length, peers, max_message_mb, **kwargs):
    """Serve blocks START:END of a model over gRPC."""
    if kwargs["fault_rate"] is None:
        kwargs["fault_rate"] = 1.0 if kwargs["fault"] else 0.0
    from node.config import ServerConfig
    from node.server import run
    from pollen.errors import PollenError

    try:
        kwargs["signer_key"] = _signer_key(kwargs.pop("signer_key_file"))
        if blocks is None:
            blocks = _auto_blocks(model_path, span_length, peers)
        kwargs["adapters"] = tuple(kwargs["adapters"])
        run(ServerConfig(model_path=model_path, start=blocks[0], end=blocks[1],
                         max_message_bytes=max_message_mb << 20, **kwargs))
    except PollenError as exc:  # NodeError, ModelError, ...
        raise click.ClickException(str(exc)) from exc


def _signer_key(path: str) -> str:
    """The receipt-signing key from a file or env POLLEN_SIGNER_KEY, never from argv."""
    from node.errors import ConfigError

    if not path:
        return os.environ.get("POLLEN_SIGNER_KEY", "").strip()
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError(f"--signer-key-file {path}: {exc.strerror}") from exc


def _auto_blocks(model_path, span_length, peers) -> tuple[int, int]:
    from node.discovery import pick_span
    from pollen.membership import StaticMembership
    from pollen.model import family_of, load_config

    config = load_config(model_path)
    n = family_of(config).num_blocks(config)
    membership = StaticMembership([p for p in peers.split(",") if p]) if peers else None
    if membership is None:
        return 0, span_length or n
    return pick_span(membership, n, span_length or n)
