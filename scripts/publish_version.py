"""Publish a model version (manifest CID) to ModelVersionRegistry:
    ape run publish_version --network ... --account A --model-name SmolLM2 --cid bafy... --blocks 30
(`pollen publish` does the IPFS part first and then the same on-chain call.)"""

import click
from ape.cli import ConnectedProviderCommand, account_option
from eth_utils import keccak

from scripts._pollen import deployment_option, load_contracts


@click.command(cls=ConnectedProviderCommand)
@account_option()
@deployment_option
@click.option("--model-id", type=int, help="existing model id (else --model-name creates one)")
@click.option("--model-name", help="create a model with this name")
@click.option("--cid", required=True, help="manifest CID")
@click.option("--blocks", "num_blocks", type=click.IntRange(1, 4096), required=True)
@click.option("--parent", type=int, default=0, show_default=True, help="parent version id")
@click.option("--tolerance", type=float, default=1e-3, show_default=True, help="max relative L2 error")
def cli(network, account, deployment, model_id, model_name, cid, num_blocks, parent, tolerance):
    """Publish version CID of a model; prints the version id (idempotent per CID)."""
    versions = load_contracts(network, deployment)["ModelVersionRegistry"]
    if not 0 < tolerance <= 1:
        raise click.BadParameter("tolerance must be in (0, 1]")
    existing = versions.versionIdByManifestHash(keccak(text=cid))
    if existing:
        click.echo(f"already published as version {existing}")
        return
    if model_id is None:
        if not model_name:
            raise click.UsageError("pass --model-id or --model-name")
        tx = versions.createModel(model_name, sender=account)
        model_id = [e for e in tx.events if e.event_name == "ModelCreated"][0].modelId
        click.echo(f"created model {model_id} ({model_name})")
    tx = versions.publishVersion(model_id, cid, num_blocks, parent, round(tolerance * 1e6), sender=account)
    vid = [e for e in tx.events if e.event_name == "VersionPublished"][0].versionId
    click.echo(f"published version {vid}: {cid} ({num_blocks} blocks)")
