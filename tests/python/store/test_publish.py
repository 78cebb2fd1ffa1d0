"""Publishing checkpoints as per-block shards and fetching spans, through both backends."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from pollen.manifest import ManifestError, load
from pollen.publish import main, publish_adapter, publish_checkpoint, register_version, replicate
from pollen.shards import ShardError, fetch_client, fetch_span, split_checkpoint, weight_files
from pollen.store import CidError, ContentMismatchError, ContentNotFoundError, KuboStore, LocalStore


def original_tensors(folder) -> dict[str, torch.Tensor]:
    out = {}
    for path in weight_files(folder):
        out.update(load_file(str(path)))
    return out


@pytest.mark.parametrize("family, prefix, blocks", [("llama", "model.layers.", 5),
                                                    ("bloom", "transformer.h.", 4)])
def test_shards_keep_original_names_and_values(request, tmp_path, family, prefix, blocks):
    checkpoint = request.getfixturevalue(f"tiny_{family}")
    split = split_checkpoint(checkpoint, tmp_path / "split")
    original = original_tensors(checkpoint)
    seen = {}
    for i, path in enumerate(split.blocks):
        shard = load_file(str(path))
        assert shard and all(name.startswith(f"{prefix}{i}.") for name in shard)
        seen.update(shard)
    client = load_file(str(split.client))
    assert not any(name.startswith(prefix) for name in client)
    seen.update(client)
    assert seen.keys() == original.keys() and len(split.blocks) == blocks
    assert all(torch.equal(seen[k], original[k]) for k in original)
    assert split.block_prefix == prefix and split.dtype == "float32"
    assert json.loads((split.folder / "pollen_split.json").read_text())["num_blocks"] == blocks
    assert [p.name for p in split.tokenizer] == ["tokenizer.json", "generation_config.json"]


def test_publish_twice_is_idempotent(local, tiny_llama):
    first = publish_checkpoint(tiny_llama, local, name="tiny", notes="v1", license="mit")
    blobs = sorted(p.name for p in local.blobs.iterdir())
    again = publish_checkpoint(tiny_llama, local, name="tiny", notes="v1", license="mit")
    assert again.manifest_cid == first.manifest_cid
    assert sorted(p.name for p in local.blobs.iterdir()) == blobs
    assert len(blobs) == 5 + 1 + 2 + 1  # blocks, client, tokenizer files, manifest
    other = publish_checkpoint(tiny_llama, local, name="tiny", notes="v2", license="mit")
    assert other.manifest_cid != first.manifest_cid


def test_publish_local_then_fetch_from_real_node_with_identical_cids(local, kubo, tiny_bloom, tmp_path):
    published = publish_checkpoint(tiny_bloom, local, name="bloom")
    copied = replicate(local, kubo, published.manifest_cid)
    assert published.manifest_cid in copied and all(kubo.has(c) for c in copied)
    direct = publish_checkpoint(tiny_bloom, kubo, name="bloom")
    assert direct.manifest_cid == published.manifest_cid
    span = fetch_span(kubo, published.manifest_cid, 0, 4, tmp_path / "cache")
    for i, ref in enumerate(published.manifest.blocks):
        assert local.path_of(ref.cid).read_bytes() == span.blocks[i].read_bytes()
    back = LocalStore(tmp_path / "second-local")  # and the other way: node → embedded
    assert replicate(kubo, back, direct.manifest_cid) == copied
    assert fetch_span(back, direct.manifest_cid, 2, 4, tmp_path / "cache2").fetched_bytes == sum(
        b.size for b in published.manifest.blocks[2:4])


def test_span_fetch_downloads_exactly_its_shards(kubo, tiny_llama, tmp_path, ipfs_node):
    published = publish_checkpoint(tiny_llama, kubo, name="span")
    manifest = published.manifest
    fresh = KuboStore(ipfs_node.api_url)
    span = fetch_span(fresh, published.manifest_cid, 1, 3, tmp_path / "cache")
    manifest_size = len(fresh.cat(published.manifest_cid))
    fresh.stats.bytes_read -= manifest_size  # that second read was this test's own
    wanted = manifest.blocks[1:3]
    assert fresh.stats.cids_read[:3] == [published.manifest_cid] + [b.cid for b in wanted]
    assert fresh.stats.bytes_read == manifest_size + sum(b.size for b in wanted)
    assert span.fetched_bytes == sum(b.size for b in wanted) and span.reused_bytes == 0
    assert sorted(span.blocks) == [1, 2] and span.client is None
    assert sorted(p.name for p in (span.folder / "blocks").iterdir()) == [
        "block_00001.safetensors", "block_00002.safetensors"]
    with safe_open(str(span.blocks[2]), framework="pt") as shard:
        assert all(k.startswith("model.layers.2.") for k in shard.keys())
    config = json.loads((span.folder / "config.json").read_text())
    assert config["num_hidden_layers"] == 5


def test_restart_reuses_cache_and_corruption_is_refetched(local, tiny_llama, tmp_path):
    published = publish_checkpoint(tiny_llama, local, name="cache")
    cache = tmp_path / "cache"
    fetch_span(local, published.manifest, 0, 2, cache)
    reread = fetch_span(local, published.manifest, 0, 2, cache)
    assert reread.fetched_bytes == 0 and reread.reused_bytes == sum(b.size for b in published.manifest.blocks[:2])
    victim = published.manifest.blocks[1]
    blob = cache / "blobs" / victim.cid
    blob.write_bytes(blob.read_bytes()[:-1] + b"\x00")
    repaired = fetch_span(local, published.manifest, 0, 2, cache)
    assert repaired.fetched_bytes == victim.size
    assert repaired.blocks[1].read_bytes() == local.path_of(victim.cid).read_bytes()


def test_bad_download_leaves_nothing_in_cache(local, tiny_llama, tmp_path):
    published = publish_checkpoint(tiny_llama, local, name="bad")
    victim = published.manifest.blocks[3]
    stored = local.path_of(victim.cid)
    stored.write_bytes(b"\x00" + stored.read_bytes()[1:])
    with pytest.raises(ContentMismatchError, match=victim.cid):
        fetch_span(local, published.manifest_cid, 3, 4, tmp_path / "cache")
    assert list((tmp_path / "cache" / "blobs").iterdir()) == []


def test_client_fetch_gets_only_client_parts(local, tiny_llama, tmp_path):
    published = publish_checkpoint(tiny_llama, local, name="client")
    files = fetch_client(local, published.manifest_cid, tmp_path / "cache")
    m = published.manifest
    assert files.blocks == {} and files.fetched_bytes == m.client.size + sum(t.size for t in m.tokenizer)
    assert not (files.folder / "blocks").exists()
    assert "model.embed_tokens.weight" in load_file(str(files.client))
    assert (files.folder / "tokenizer.json").is_file()


def test_bad_spans_and_unknown_versions(local, tiny_llama, tmp_path):
    published = publish_checkpoint(tiny_llama, local, name="spans")
    for first, last in [(3, 2), (0, 6), (-1, 1), (2, 2)]:
        with pytest.raises(ShardError, match=rf"span \[{first}, {last}\) is outside the version's 5 blocks"):
            fetch_span(local, published.manifest_cid, first, last, tmp_path / "cache")
    with pytest.raises(CidError):
        fetch_span(local, "not-a-cid", 0, 1, tmp_path / "cache")
    shard_cid = published.manifest.blocks[0].cid
    with pytest.raises(ManifestError, match=f"invalid manifest {shard_cid}: not JSON"):
        fetch_span(local, shard_cid, 0, 1, tmp_path / "cache")


def test_bad_checkpoints(tmp_path, tiny_llama, local):
    with pytest.raises(ShardError, match="has no config.json"):
        publish_checkpoint(tmp_path, local)
    broken = tmp_path / "broken"
    shutil.copytree(tiny_llama, broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(ShardError, match="has no model.safetensors"):
        publish_checkpoint(broken, local)
    shutil.copy(tiny_llama / "model.safetensors", broken)
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 7}))
    with pytest.raises(ShardError, match="cannot find the 7 transformer blocks"):
        publish_checkpoint(broken, local)


def test_parent_and_adapter_are_tagged(local, tiny_llama, tmp_path):
    base = publish_checkpoint(tiny_llama, local, name="base")
    child = publish_checkpoint(tiny_llama, local, name="child", parent=base.manifest_cid)
    assert load(local, child.manifest_cid).parent == base.manifest_cid
    adapter = tmp_path / "lora"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 4, "peft_type": "LORA"}))
    (adapter / "adapter_model.safetensors").write_bytes(b"weights")
    cid, manifest = publish_adapter(adapter, local, base.manifest_cid, kind="lora")
    assert load(local, cid, adapter=True) == manifest
    assert manifest.base == base.manifest_cid and manifest.config["r"] == 4
    assert [f.path for f in manifest.files] == ["adapter_config.json", "adapter_model.safetensors"]
    missing = LocalStore(tmp_path / "empty")
    with pytest.raises(ContentNotFoundError):
        publish_adapter(adapter, missing, base.manifest_cid, kind="lora")
    with pytest.raises(ContentNotFoundError):
        publish_checkpoint(tiny_llama, missing, parent=base.manifest_cid)


def test_register_version_passes_registry_arguments(local, tiny_llama):
    calls = []

    class Registry:  # records what ModelVersionRegistry.publishVersion would receive
        def version_by_manifest(self, cid):
            return 7 if calls else 0

        def publish_version(self, *args):
            calls.append(args)
            return 7
    published = publish_checkpoint(tiny_llama, local, name="reg", tolerance=2.5e-3)
    assert register_version(Registry(), 3, published, parent_version_id=1) == 7
    assert register_version(Registry(), 3, published, parent_version_id=1) == 7
    assert calls == [(3, published.manifest_cid, 5, 1, 2500)]


def test_cli_prints_the_manifest_cid(local, tiny_llama, capsys):
    assert main([str(tiny_llama), "--store", str(local.root), "--name", "cli"]) == 0
    cid = capsys.readouterr().out.strip()
    assert cid == publish_checkpoint(tiny_llama, local, name="cli").manifest_cid
    assert main([str(tiny_llama), "--store", str(local.root), "--parent", "nope"]) == 1
    assert "malformed CID 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("family", ["llama", "bloom"])
def test_fetched_span_folder_loads_with_the_model_loader(request, local, tmp_path, family):
    """The storage format is what pollen.model.loading reads: a span fetched by CID computes
    exactly what the same blocks loaded from the original checkpoint compute."""
    from pollen.model.loading import load_client, load_span

    checkpoint = request.getfixturevalue(f"tiny_{family}")
    published = publish_checkpoint(checkpoint, local, name=family)
    span = fetch_span(local, published.manifest_cid, 1, 3, tmp_path / "cache")
    x = torch.randn(1, 4, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(load_span(span.folder, 1, 3)(x), load_span(checkpoint, 1, 3)(x))
    client = fetch_client(local, published.manifest_cid, tmp_path / "cache")
    fetched, original = load_client(client.folder)[2], load_client(checkpoint)[2]
    assert all(torch.equal(a, b) for a, b in zip(fetched.state_dict().values(), original.state_dict().values()))


def test_span_fetch_reports_overall_progress(local, tiny_llama, tmp_path):
    published = publish_checkpoint(tiny_llama, local, name="progress")
    seen = []
    fetch_span(local, published.manifest_cid, 0, 5, tmp_path / "cache", progress=lambda d, t: seen.append((d, t)))
    total = sum(b.size for b in published.manifest.blocks)
    assert seen[-1] == (total, total) and all(t == total for _, t in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_manifest_with_wrong_size_is_caught(local, tiny_llama, tmp_path):
    published = publish_checkpoint(tiny_llama, local, name="sizes")
    data = json.loads(local.cat(published.manifest_cid))
    data["blocks"][0]["size"] += 1
    lying = local.add_bytes(json.dumps(data).encode()).cid
    with pytest.raises(ShardError, match=r"block_00000.safetensors .* the manifest says"):
        fetch_span(local, lying, 0, 1, tmp_path / "cache")
    assert list((tmp_path / "cache" / "blobs").iterdir()) == []
