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
def publish(checkpoint, deployment, rpc, key_file, store, model_id, name, tolerance, parent_version):
    """Publish CHECKPOINT as a new model version (idempotent: same files, same version)."""
    from pollen.chain import Chain, Deployment
    from pollen.errors import PollenError
    from pollen.publish import DEFAULT_TOLERANCE, publish_checkpoint, register_version
    from pollen.store import open_store

    try:
        chain = Chain.connect(Deployment.load(deployment), private_key=Path(key_file).read_text().strip(),
                              rpc=rpc or None)
        parent_cid = chain.version(parent_version)["manifest_cid"] if parent_version else None
        published = publish_checkpoint(checkpoint, open_store(store), name=name, parent=parent_cid,
                                       tolerance=DEFAULT_TOLERANCE if tolerance is None else tolerance,
                                       progress=True)
        click.echo(f"manifest {published.manifest_cid} ({published.manifest.num_blocks} blocks, "
                   f"{published.uploaded_bytes / 1e6:.1f} MB)")
        model_id = model_id or chain.create_model(name or published.manifest.name)
        version_id = register_version(chain, model_id, published, parent_version)
    except (PollenError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"model {model_id}, version {version_id}")
