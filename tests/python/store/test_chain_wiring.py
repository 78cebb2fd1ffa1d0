"""Publish → register on a real anvil (through pollen.chain) → a server given only the version
id fetches its span over the real IPFS node. Absent and deprecated versions are refused."""

from __future__ import annotations

import pytest

from devstack.anvil import dev_keys, start_anvil
from pollen.chain import Chain, ChainError
from pollen.deploy import Parameters, deploy_all
from pollen.publish import publish_adapter, publish_checkpoint, register_adapter, register_version
from pollen.shards import VersionError, fetch_version_span

pytestmark = pytest.mark.anvil


@pytest.fixture(scope="module")
def chain():
    with start_anvil() as node:
        deployment = deploy_all(node.rpc, params=Parameters(), log=lambda *_: None)
        yield Chain.connect(deployment, private_key=dev_keys(1)[0])


def test_server_with_only_a_version_id_gets_its_span(chain, kubo, tiny_llama, tmp_path):
    published = publish_checkpoint(tiny_llama, kubo, name="wired", tolerance=0.002)
    model_id = chain.create_model("tiny-llama")
    version_id = register_version(chain, model_id, published)
    assert register_version(chain, model_id, published) == version_id  # idempotent on chain too
    on_chain = chain.version(version_id)
    assert (on_chain["manifest_cid"], on_chain["num_blocks"], on_chain["tolerance_micros"]) == (
        published.manifest_cid, 5, 2000)
    span = fetch_version_span(kubo, chain, version_id, 2, 4, tmp_path / "cache")
    assert sorted(span.blocks) == [2, 3] and span.manifest_cid == published.manifest_cid
    assert span.fetched_bytes == sum(b.size for b in published.manifest.blocks[2:4])


def test_adapter_is_tagged_with_its_base_version(chain, kubo, tiny_llama, tmp_path):
    published = publish_checkpoint(tiny_llama, kubo, name="adapter-base")
    version_id = register_version(chain, chain.create_model("base"), published)
    (tmp_path / "prompt.safetensors").write_bytes(b"trained prompt")
    cid, manifest = publish_adapter(tmp_path, kubo, published.manifest_cid, kind="prompt", name="p")
    adapter_id = register_adapter(chain, version_id, cid, manifest)
    got = chain.versions.functions.getAdapter(adapter_id).call()
    assert (got[0], got[2], got[3], got[4]) == (version_id, cid, "p", "prompt")


def test_absent_and_deprecated_versions_are_refused(chain, kubo, tiny_llama, tmp_path):
    with pytest.raises(ChainError, match="does not exist"):
        fetch_version_span(kubo, chain, 999, 0, 1, tmp_path / "cache")
    published = publish_checkpoint(tiny_llama, kubo, name="old", notes="to be deprecated")
    version_id = register_version(chain, chain.create_model("old"), published)
    chain.deprecate_version(version_id, 0)
    with pytest.raises(VersionError, match=f"model version {version_id}: is deprecated"):
        fetch_version_span(kubo, chain, version_id, 0, 1, tmp_path / "cache")
    assert not (tmp_path / "cache" / "blobs").exists()
