"""`pollen publish`: split a checkpoint into per-block shards, add them to the content store, and
register the manifest CID as a model version on chain (the model maintainer's command)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("publish")
@click.argument("checkpoint", type=click.Path(exists=True, file_okay=False))
@click.option("--deployment", default="deployments/demo.json", show_default=True)
@click.option("--rpc", default="", help="JSON-RPC URL (default: the deployment's)")
@click.option("--key-file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="file holding the maintainer's hex private key")
@click.option("--store", default=".cache/store", show_default=True, help="content store folder or Kubo RPC URL")
@click.option("--model-id", default=0, show_default=True, help="existing model id (0 = create a model)")
@click.option("--name", default=None, help="model / version name (default: the folder name)")
@click.option("--tolerance", default=None, type=float, help="audit tolerance, max relative L2 error")
@click.option("--parent-version", default=0, show_default=True, help="parent version id")
@click.option("--require-improvement", is_flag=True,
              help="refuse unless CHECKPOINT, scored here on each of the model's benchmarks, is no worse "
                   "than the parent version's recorded score")
@click.option("--benchmark-registry", default="", help="BenchmarkRegistry address (default: the deployment's)")
def publish(checkpoint, deployment, rpc, key_file, store, model_id, name, tolerance, parent_version,
            require_improvement, benchmark_registry):
    """Publish CHECKPOINT as a new model version (idempotent: same files, same version)."""
    from pollen.chain import Chain, Deployment
    from pollen.errors import PollenError
    from pollen.publish import DEFAULT_TOLERANCE, publish_checkpoint, register_version
    from pollen.store import open_store

    try:
        chain = Chain.connect(Deployment.load(deployment), private_key=Path(key_file).read_text().strip(),
                              rpc=rpc or None)
        parent_cid = chain.version(parent_version)["manifest_cid"] if parent_version else None
        if require_improvement:
            check_improvement(chain, checkpoint, open_store(store), parent_version, model_id, benchmark_registry)
        published = publish_checkpoint(checkpoint, open_store(store), name=name, parent=parent_cid,
                                       tolerance=DEFAULT_TOLERANCE if tolerance is None else tolerance,
                                       progress=True)
        click.echo(f"manifest {published.manifest_cid} ({published.manifest.num_blocks} blocks, "
                   f"{published.uploaded_bytes / 1e6:.1f} MB)")
        if parent_version and not model_id:  # a successor belongs to its parent's model
            model_id = chain.version(parent_version)["model_id"]
        model_id = model_id or chain.create_model(name or published.manifest.name)
        version_id = register_version(chain, model_id, published, parent_version)
    except (PollenError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"model {model_id}, version {version_id}")


def check_improvement(chain, checkpoint, store, parent_version: int, model_id: int, registry_address: str) -> None:
    """Score CHECKPOINT locally on each benchmark of the parent's model where the parent has a
    recorded score, print both, and raise (naming both scores) if the parent's is better."""
    from pollen.benchmarks_onchain import BenchmarkRegistry, compare, local_scorer, require_improvement
    from pollen.errors import PollenError

    if not parent_version:
        raise PollenError("--require-improvement needs --parent-version: the version to improve on")
    parent_model = chain.version(parent_version)["model_id"]
    if model_id and model_id != parent_model:
        raise PollenError(f"--model-id {model_id} differs from parent version {parent_version}'s model {parent_model}")
    model, tokenizer = _load_local(checkpoint)
    registry = BenchmarkRegistry.of(chain, registry_address or None)
    comparisons = compare(registry, "version", parent_version, parent_model, local_scorer(store, model, tokenizer))
    for c in comparisons:
        shown = "no recorded score (skipped)" if c.parent is None else f"parent {c.parent:.6f}, candidate {c.candidate:.6f}"
        click.echo(f"benchmark {c.benchmark.id} ({c.benchmark.metric}): {shown}")
    require_improvement(comparisons, parent_model)


def _load_local(checkpoint):
    """The candidate as a plain transformers model (float32, eval mode) and its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(checkpoint))
    except (OSError, ValueError) as exc:
        raise ValueError(f"--require-improvement scores the checkpoint, which needs its tokenizer: {exc}") from exc
    model = AutoModelForCausalLM.from_pretrained(str(checkpoint), dtype=torch.float32).eval()
    return model, tokenizer
