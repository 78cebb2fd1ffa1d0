"""Manifest schema: canonical bytes, validation on read, clear errors naming the field."""

from __future__ import annotations

import copy
import json

import pytest

from pollen.manifest import ManifestError, block_filename, json_schema, load, parse, to_bytes
from pollen.store import cid_of_bytes

CID = cid_of_bytes(b"a shard")


def valid(num_blocks: int = 2) -> dict:
    ref = lambda path, size=10: {"path": path, "cid": CID, "size": size}  # noqa: E731
    return {"schema": "pollen.manifest/1", "name": "tiny", "architecture": "LlamaForCausalLM",
            "model_type": "llama", "config": {"num_hidden_layers": num_blocks},
            "num_blocks": num_blocks, "block_prefix": "model.layers.", "dtype": "float32",
            "tolerance": {"metric": "max_relative_l2", "value": 0.001},
            "blocks": [ref(block_filename(i)) for i in range(num_blocks)],
            "client": ref("client.safetensors", 20), "tokenizer": [ref("tokenizer.json", 5)],
            "parent": None, "notes": "n", "license": "apache-2.0"}


def test_valid_manifest_round_trips_canonically():
    manifest = parse(valid())
    raw = to_bytes(manifest)
    assert parse(raw) == manifest and to_bytes(parse(raw)) == raw
    assert json.loads(raw) == valid()
    assert manifest.tolerance.micros == 1000 and manifest.total_bytes == 45


def mutate(edit) -> dict:
    data = copy.deepcopy(valid())
    edit(data)
    return data


@pytest.mark.parametrize("edit, problem", [
    (lambda d: d.pop("client"), "client: Field required"),
    (lambda d: d["blocks"][1].update(cid="Qmnope"), "blocks.1.cid"),
    (lambda d: d["blocks"][0].update(size=-1), "blocks.0.size"),
    (lambda d: d.update(num_blocks=3), "2 block shards listed for num_blocks=3"),
    (lambda d: d.update(dtype="int3"), "dtype"),
    (lambda d: d["tolerance"].update(value=0), "tolerance.value"),
    (lambda d: d.update(extra_field=1), "extra_field: Extra inputs are not permitted"),
    (lambda d: d["blocks"].reverse(), "block 0 must be stored at"),
    (lambda d: d["tokenizer"][0].update(path="../../etc/passwd"), "must be relative"),
    (lambda d: d.update(parent="bafy-not-a-cid"), "parent"),
    (lambda d: d.update(schema="pollen.manifest/2"), "this Pollen reads 'pollen.manifest/1'"),
])
def test_schema_failures_name_the_problem(edit, problem):
    with pytest.raises(ManifestError, match="invalid manifest") as err:
        parse(mutate(edit))
    assert problem in str(err.value)


@pytest.mark.parametrize("raw, problem", [(b"{not json", "not JSON"), (b"[1, 2]", "JSON object")])
def test_non_object_content(raw, problem):
    with pytest.raises(ManifestError, match=problem):
        parse(raw)


def test_load_verifies_and_validates_by_cid(local):
    good = local.add_bytes(to_bytes(parse(valid()))).cid
    assert load(local, good).name == "tiny"
    bad = local.add_bytes(json.dumps(mutate(lambda d: d.pop("dtype"))).encode()).cid
    with pytest.raises(ManifestError, match=f"invalid manifest {bad}: dtype: Field required"):
        load(local, bad)


def test_json_schema_is_exported():
    schema = json_schema()
    assert "blocks" in schema["required"] and schema["additionalProperties"] is False
    assert json_schema(adapter=True)["properties"]["base"]["type"] == "string"
