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

from pollen.networks import deployment_options


@click.command("publish")
@click.argument("checkpoint", type=click.Path(exists=True, file_okay=False))
@deployment_options
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



# ------------------------------------------------------------------------------ pollen bench


def _bench_options(f):
    f = click.option("--benchmark-registry", default="", help="BenchmarkRegistry address (default: the deployment's)")(f)
    f = click.option("--key-file", default=None, type=click.Path(exists=True, dir_okay=False),
                     help="file holding the account's hex private key (not needed to read scores)")(f)
    f = click.option("--rpc", default="", help="JSON-RPC URL (default: the deployment's)")(f)
    return deployment_options(f)


def _registry(deployment, rpc, key_file, benchmark_registry):
    from pollen.benchmarks_onchain import BenchmarkRegistry
    from pollen.chain import Chain, Deployment

    key = Path(key_file).read_text().strip() if key_file else None
    chain = Chain.connect(Deployment.load(deployment), private_key=key, rpc=rpc or None)
    return BenchmarkRegistry.of(chain, benchmark_registry or None)


@click.group("bench")
def bench():
    """Living benchmarks: register a dataset + metric for a model, request evaluations, read scores."""


@bench.command("register")
@_bench_options
@click.option("--store", default=".cache/store", show_default=True, help="content store folder or Kubo RPC URL")
@click.option("--model-id", required=True, type=int)
@click.option("--dataset", "dataset_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="JSONL of {prompt, answer} (or {text, label})")
@click.option("--metric", default="answer_loglik", show_default=True, type=click.Choice(["answer_loglik", "exact_match"]))
@click.option("--tolerance", default=0.01, show_default=True, help="max distance (metric units) from the median to be paid")
def bench_register(deployment, rpc, key_file, benchmark_registry, store, model_id, dataset_file, metric, tolerance):
    """Publish a dataset to the content store and register it as a benchmark of MODEL (maintainers)."""
    from pollen.benchmarks_onchain import parse_dataset, publish_dataset
    from pollen.errors import PollenError
    from pollen.store import open_store

    try:
        registry = _registry(deployment, rpc, key_file, benchmark_registry)
        cid = publish_dataset(open_store(store), parse_dataset(Path(dataset_file).read_bytes(), where=dataset_file))
        bench_id = registry.register_benchmark(model_id, cid, metric, tolerance=tolerance)
    except (PollenError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"benchmark {bench_id} (model {model_id}, {metric}, dataset {cid})")


@bench.command("request")
@_bench_options
@click.option("--version", "version_id", default=0, help="version id to evaluate")
@click.option("--adapter", "adapter_id", default=0, help="adapter id to evaluate")
@click.option("--benchmark", "benchmark_id", required=True, type=int)
@click.option("--fee-wei", default=None, type=int, help="fee paying the evaluators (default: the registry's minimum)")
def bench_request(deployment, rpc, key_file, benchmark_registry, version_id, adapter_id, benchmark_id, fee_wei):
    """Pay for an evaluation of a version or an adapter on a benchmark."""
    from pollen.errors import PollenError

    if bool(version_id) == bool(adapter_id):
        raise click.UsageError("name exactly one of --version and --adapter")
    kind, subject = ("version", version_id) if version_id else ("adapter", adapter_id)
    try:
        rid = _registry(deployment, rpc, key_file, benchmark_registry).request_evaluation(kind, subject, benchmark_id,
                                                                                            fee_wei)
    except (PollenError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"evaluation request {rid} ({kind} {subject}, benchmark {benchmark_id})")


@bench.command("scores")
@_bench_options
@click.option("--model-id", required=True, type=int)
def bench_scores(deployment, rpc, key_file, benchmark_registry, model_id):
    """Each version's and adapter's recorded score on the model's benchmarks."""
    from pollen.errors import PollenError

    try:
        registry = _registry(deployment, rpc, key_file, benchmark_registry)
        for line in score_lines(registry, model_id):
            click.echo(line)
    except (PollenError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc


def score_lines(registry, model_id: int) -> list[str]:
    """One line per (subject, benchmark) of the model: the recorded score or "not scored"."""
    v = registry.chain.versions.functions
    versions = [i for i in range(1, v.versionCount().call() + 1) if v.getVersion(i).call()[0] == model_id]
    adapters = [i for i in range(1, v.adapterCount().call() + 1) if v.getAdapter(i).call()[0] in versions]
    lines = []
    for b in registry.benchmarks_of(model_id):
        for kind, ids in (("version", versions), ("adapter", adapters)):
            for i in ids:
                s = registry.score_of(kind, i, b.id)
                lines.append(f"benchmark {b.id} {b.metric}: {kind} {i}: {'not scored' if s is None else f'{s:.6f}'}")
    return lines
