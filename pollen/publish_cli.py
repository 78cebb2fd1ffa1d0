"""`pollen publish`: split a checkpoint into per-block shards, add them to the content store, and
register the manifest CID as a model version on chain (the model maintainer's command); or, with
`--adapter-of VERSION`, publish a peft LoRA folder as an adapter of that version.

`--require-improvement` gates either on the model's living benchmarks (BenchmarkRegistry): the
candidate (the checkpoint, or the base checkpoint with the LoRA applied) is scored here on every
benchmark where the parent (the parent version, or the adapter's base version) has a recorded
score, and nothing is registered on chain if the parent's score is better on any of them. This is
the publisher's own gate; the score the chain records for the new version or adapter is the one
drawn evaluators agree on after an evaluation request.
"""

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
@click.option("--model-id", default=0, show_default=True,
              help="existing model id (0 = the parent's model, or a new model without a parent)")
@click.option("--name", default=None, help="model / version / adapter name (default: the folder name)")
@click.option("--tolerance", default=None, type=float, help="audit tolerance, max relative L2 error")
@click.option("--parent-version", default=0, show_default=True, help="parent version id")
@click.option("--adapter-of", default=0, show_default=True,
              help="publish CHECKPOINT (a peft LoRA folder) as an adapter of this version instead")
@click.option("--base-checkpoint", default=None, type=click.Path(exists=True, file_okay=False),
              help="with --adapter-of --require-improvement: the base version's checkpoint, to score the LoRA on")
@click.option("--require-improvement", is_flag=True,
              help="refuse unless the candidate, scored here on each of the model's benchmarks, is no worse "
                   "than its parent's recorded score")
@click.option("--benchmark-registry", default="", help="BenchmarkRegistry address (default: the deployment's)")
def publish(checkpoint, deployment, rpc, key_file, store, model_id, name, tolerance, parent_version, adapter_of,
            base_checkpoint, require_improvement, benchmark_registry):
    """Publish CHECKPOINT as a new model version (idempotent: same files, same version)."""
    from pollen.chain import Chain, Deployment
    from pollen.errors import PollenError
    from pollen.store import open_store

    try:
        chain = Chain.connect(Deployment.load(deployment), private_key=Path(key_file).read_text().strip(),
                              rpc=rpc or None)
        gate = Gate(chain, open_store(store), benchmark_registry) if require_improvement else None
        if adapter_of:
            line = _publish_adapter(chain, open_store(store), checkpoint, adapter_of, name, gate, base_checkpoint)
        else:
            line = _publish_version(chain, open_store(store), checkpoint, model_id, name, tolerance, parent_version,
                                    gate)
    except (PollenError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(line)


def _publish_version(chain, store, checkpoint, model_id, name, tolerance, parent_version, gate) -> str:
    from pollen.benchmarks_onchain import load_local_model
    from pollen.errors import PollenError
    from pollen.publish import DEFAULT_TOLERANCE, publish_checkpoint, register_version

    parent = chain.version(parent_version) if parent_version else None
    if parent and model_id and model_id != parent["model_id"]:
        raise PollenError(f"--model-id {model_id} differs from parent version {parent_version}'s model "
                          f"{parent['model_id']}")
    if gate:
        if not parent:
            raise PollenError("--require-improvement needs --parent-version: the version to improve on")
        gate.check(parent_version, parent["model_id"], *load_local_model(checkpoint))
    published = publish_checkpoint(checkpoint, store, name=name, parent=parent and parent["manifest_cid"],
                                   tolerance=DEFAULT_TOLERANCE if tolerance is None else tolerance, progress=True)
    click.echo(f"manifest {published.manifest_cid} ({published.manifest.num_blocks} blocks, "
               f"{published.uploaded_bytes / 1e6:.1f} MB)")
    model_id = model_id or (parent["model_id"] if parent else chain.create_model(name or published.manifest.name))
    return f"model {model_id}, version {register_version(chain, model_id, published, parent_version)}"


def _publish_adapter(chain, store, folder, base_version, name, gate, base_checkpoint) -> str:
    from pollen.adapters import publish_lora
    from pollen.benchmarks_onchain import load_local_model, with_published_lora
    from pollen.errors import PollenError
    from pollen.publish import register_adapter

    base = chain.version(base_version)
    cid, manifest = publish_lora(folder, store, base["manifest_cid"], name=name)
    click.echo(f"adapter manifest {cid} ({manifest.name}, base version {base_version})")
    if gate:
        if not base_checkpoint:
            raise PollenError("--require-improvement with --adapter-of needs --base-checkpoint (the base version's "
                              "checkpoint folder) to score the adapter on")
        model, tokenizer = load_local_model(base_checkpoint)
        gate.check(base_version, base["model_id"], with_published_lora(model, store, cid, base["manifest_cid"]),
                   tokenizer)
    return f"adapter {register_adapter(chain, base_version, cid, manifest)} of version {base_version}"


class Gate:
    """--require-improvement: compare a candidate with a parent version on the model's benchmarks."""

    def __init__(self, chain, store, registry_address: str):
        from pollen.benchmarks_onchain import BenchmarkRegistry

        self.store = store
        self.registry = BenchmarkRegistry.of(chain, registry_address or None)

    def check(self, parent_version: int, model_id: int, model, tokenizer) -> None:
        """Score the candidate where the parent has a recorded score, print both, and raise
        (naming both scores) if the parent's is better on any benchmark."""
        from pollen.benchmarks_onchain import compare, local_scorer, require_improvement

        comparisons = compare(self.registry, "version", parent_version, model_id,
                              local_scorer(self.store, model, tokenizer))
        for c in comparisons:
            shown = ("no recorded score (skipped)" if c.parent is None
                     else f"parent {c.parent:.6f}, candidate {c.candidate:.6f}")
            click.echo(f"benchmark {c.benchmark.id} ({c.benchmark.metric}): {shown}")
        require_improvement(comparisons, model_id)

