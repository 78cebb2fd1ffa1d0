"""Published LoRA served by name through real `pollen serve` processes: a client's trained adapter
(save_pretrained, peft layout) is published as per-block shards under an adapter manifest; servers
load it by CID at start (`--adapter CID --adapter-store DIR`), verified; clients name it per model
/ session (`active_adapter=CID`). Several adapters per server. Output equals applying the same
weights locally (float32, atol 1e-5 + rtol 1e-4; input gradients, which reach ~500, within 1e-5
relative L2)."""

from __future__ import annotations

import os
import shutil
import time

import grpc
import pytest
import torch

import procs
from client import AutoDistributedModelForCausalLM, RequestRejected
from client.remote import RemoteBlocks
from pollen import wire
from pollen.adapters import AdapterError, SHARD, load_lora, publish_lora
from pollen.manifest import load as load_manifest
from pollen.model import load_client, load_span
from pollen.proto import swarm_pb2 as pb
from pollen.proto import swarm_pb2_grpc as pb_grpc
from pollen.publish import publish_checkpoint
from pollen.receipts import ZERO_HASH, chain_input_hash, fold_adapter, hash_tensor
from pollen.store import ContentMismatchError, LocalStore

N, C = 6, 64
NOWHERE = ["127.0.0.1:9"]


def close(a, b):
    return torch.allclose(a, b, atol=1e-5, rtol=1e-4)


def _trained(path, out, seed, targets=("q_proj", "v_proj")):
    """A LoRA adapter as a client would save it after training (B != 0), and its weights."""
    m = AutoDistributedModelForCausalLM.from_pretrained(path, initial_peers=NOWHERE, tuning_mode="lora",
                                                        lora_rank=4, lora_alpha=8.0, lora_targets=targets)
    with torch.no_grad():
        for b in m.lora.b:
            b.normal_(0, 0.2, generator=torch.Generator().manual_seed(seed))
    return m.save_pretrained(out), m.lora.layout()


@pytest.fixture(scope="module")
def published(tiny_llama, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("published-lora")
    store = LocalStore(tmp / "store")
    base = publish_checkpoint(tiny_llama, store).manifest_cid
    folders, weights, cids = [], [], []
    for seed, targets in ((1, ("q_proj", "v_proj")), (2, ("q_proj", "v_proj", "o_proj"))):
        folder, lora = _trained(tiny_llama, tmp / f"lora{seed}", seed, targets)
        t0 = time.perf_counter()
        cid, manifest = publish_lora(folder, store, base, name=f"lora{seed}")
        assert manifest.base == base and manifest.kind == "lora" and len(manifest.files) == N + 1
        folders.append(folder)
        weights.append(lora)
        cids.append(cid)
    return {"store": store, "base": base, "cids": cids, "weights": weights, "tmp": tmp,
            "publish_s": time.perf_counter() - t0}


@pytest.fixture(scope="module")
def servers(tiny_llama, published):
    extra = ["--adapter-store", str(published["store"].root), "--base-manifest", published["base"]]
    for cid in published["cids"]:
        extra += ["--adapter", cid]
    started = procs.start(tiny_llama, [(0, 3), (3, 6)], *extra, log_dir=published["tmp"])
    yield started
    procs.stop_all(started)


def _model(path, servers, **kw):
    return AutoDistributedModelForCausalLM.from_pretrained(path, initial_peers=[s.address for s in servers], **kw)


def _local_logits(path, ids, lora):
    _, _, parts = load_client(path)
    with torch.no_grad():
        return parts.head(load_span(path, 0, N)(parts.embed(ids), lora=lora))


def test_load_lora_fetches_only_its_blocks_and_matches_the_saved_weights(published):
    store, cid, want = published["store"], published["cids"][0], published["weights"][0]
    got = load_lora(store, cid, 3, 6)
    assert got.targets == want.targets and (got.rank, got.alpha) == (want.rank, want.alpha)
    assert all(torch.equal(g, w) for g, w in zip(got.tensors(), want.slice(3, 6).tensors()))
    with pytest.raises(AdapterError, match="is for base version"):
        load_lora(store, cid, 0, 3, base=published["cids"][1])


def test_two_published_adapters_served_by_name_equal_applying_them_locally(tiny_llama, servers, published):
    ids = torch.randint(0, 320, (2, 6), generator=torch.Generator().manual_seed(3))
    models = [_model(tiny_llama, servers, active_adapter=cid) for cid in published["cids"]]
    plain = _model(tiny_llama, servers)
    try:
        with torch.no_grad():
            outs = [m(ids).logits for m in models]
            base = plain(ids).logits
        for out, lora in zip(outs, published["weights"]):
            assert close(out, _local_logits(tiny_llama, ids, lora)), (out - _local_logits(tiny_llama, ids, lora)).abs().max()
            assert not close(out, base)  # the adapter matters
        assert close(base, _local_logits(tiny_llama, ids, None))  # and the same servers still serve the base model
        r = models[0].runner.receipts[0].receipt  # the receipt commits to the adapter's CID
        x = load_client(tiny_llama)[2].embed(ids)
        assert r.input_hash == fold_adapter(chain_input_hash(ZERO_HASH, hash_tensor(x)), published["cids"][0])
        # generation: every session names the adapter; greedy tokens equal a full forward per token
        prompt = ids[:1, :3]
        out = models[1].generate(prompt, max_new_tokens=4)
        seq = prompt
        for _ in range(4):
            seq = torch.cat([seq, _local_logits(tiny_llama, seq, published["weights"][1])[:, -1:].argmax(-1)], 1)
        assert out.shape[1] > 3 and torch.equal(out, seq[:, :out.shape[1]]), (out, seq)  # (it may stop at EOS)
    finally:
        for m in [*models, plain]:
            m.close()


def test_backward_through_a_published_adapter_equals_local_autograd(tiny_llama, servers, published):
    """Prompts or a head can be tuned on top of a published adapter: dL/dx through its frozen weights."""
    model = _model(tiny_llama, servers, active_adapter=published["cids"][0])
    try:
        g = torch.Generator().manual_seed(4)
        x, w = torch.randn(2, 5, C, generator=g), torch.randn(2, 5, C, generator=g)
        xr = x.clone().requires_grad_(True)
        (RemoteBlocks.apply(xr, model.runner) * w).sum().backward()
        xl = x.clone().requires_grad_(True)
        (load_span(tiny_llama, 0, N)(xl, lora=published["weights"][0]) * w).sum().backward()
        rel = (xr.grad - xl.grad).norm() / xl.grad.norm()  # gradients reach ~500: relative L2, float32
        assert rel < 1e-5, rel
    finally:
        model.close()


def test_unknown_adapter_rejected_while_another_session_continues(tiny_llama, servers, published):
    head = servers[0]
    channel = grpc.insecure_channel(head.address)
    stub = pb_grpc.BlockServerStub(channel)
    info = stub.Info(pb.InfoRequest(), timeout=10)
    assert sorted(info.adapters) == sorted(published["cids"])
    ref = load_span(tiny_llama, 0, 3)
    lora = published["weights"][0].slice(0, 3)
    cache = ref.new_cache(1, 16)
    good = procs.Stream(stub)
    x0 = torch.randn(1, 4, C, generator=torch.Generator().manual_seed(5))
    req = pb.InferenceRequest(hidden=wire.encode(x0), step=0)
    req.open.CopyFrom(pb.SessionOpen(session_id=os.urandom(32), start=0, end=3, max_length=16, batch_size=1,
                                     adapter=published["cids"][0]))
    try:
        with torch.no_grad():
            assert close(wire.decode(good.send(req).hidden), ref(x0, cache, lora=lora))
        missing = published["base"]  # a CID, but not an adapter this server loaded
        with pytest.raises(grpc.RpcError) as err:
            stub.Forward(pb.ForwardRequest(session_id=os.urandom(32), start=0, end=3, hidden=wire.encode(x0),
                                           adapter=missing), timeout=30)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "is not loaded on this server" in \
            err.value.details()
        with pytest.raises(grpc.RpcError) as err:
            bad = pb.InferenceRequest(hidden=wire.encode(x0), step=0)
            bad.open.CopyFrom(pb.SessionOpen(session_id=os.urandom(32), start=0, end=3, max_length=16,
                                             batch_size=1, adapter=missing))
            procs.Stream(stub).send(bad)
        assert "is not loaded on this server" in err.value.details()
        xs = torch.randn(1, 1, C, generator=torch.Generator().manual_seed(6))
        y = wire.decode(good.send(pb.InferenceRequest(hidden=wire.encode(xs), step=1)).hidden)
        with torch.no_grad():
            assert close(y, ref(xs, cache, lora=lora))
    finally:
        good.q.put(None)
        channel.close()
    model = _model(tiny_llama, servers, active_adapter=missing)
    try:
        with pytest.raises(RequestRejected, match="is not loaded"):
            model(torch.zeros(1, 3, dtype=torch.long))
    finally:
        model.close()


def test_tampered_shard_or_other_base_refused_at_server_start(tiny_llama, published, tmp_path):
    from pollen.model.tiny import make_checkpoint

    copy = LocalStore(tmp_path / "store")
    shutil.copytree(published["store"].blobs, copy.blobs, dirs_exist_ok=True)
    cid = published["cids"][0]
    shard = next(f for f in load_manifest(copy, cid, adapter=True).files if f.path == SHARD.format(4))
    blob = copy.path_of(shard.cid)
    data = bytearray(blob.read_bytes())
    data[-1] ^= 1  # one flipped bit in block 4's weights
    blob.write_bytes(bytes(data))
    with pytest.raises(ContentMismatchError):
        load_lora(copy, cid, 3, 6)
    assert torch.equal(load_lora(copy, cid, 0, 3).a[0], published["weights"][0].a[0][:3])  # other shards fine
    other = make_checkpoint("llama", tmp_path / "other", hidden_size=32, intermediate_size=64)
    other_base = publish_checkpoint(other, copy).manifest_cid
    folder, _ = _trained(other, tmp_path / "other-lora", 3)
    other_cid, _ = publish_lora(folder, copy, other_base)
    cases = {"tampered": (cid, "does not match|mismatch"), "other base": (other_cid, "is for base version")}
    for name, (adapter, message) in cases.items():
        server = procs.spawn(tiny_llama, (3, 6), "--adapter", adapter, "--adapter-store", str(copy.root),
                             "--base-manifest", published["base"], log_dir=tmp_path)
        with pytest.raises(RuntimeError, match="did not start"):
            procs.wait_ready([server])
        server.stop()
        log = "\n".join(p.read_text() for p in tmp_path.glob("server-3-6-*.log"))
        assert f"cannot load adapter {adapter}" in log, (name, log[-2000:])
        import re

        assert re.search(message, log, re.I), (name, log[-2000:])
        for p in tmp_path.glob("server-3-6-*.log"):
            p.unlink()


def test_evidence_naming_an_adapter_is_audited_with_its_weights(tiny_llama, servers, published):
    """A Forward receipt that named a published adapter: the bundle carries the CID (schema /4),
    the auditor fetches the adapter by CID and recomputes with it; a server that ignored the
    adapter (base-model output under a receipt naming it) is found faulty."""
    import dataclasses

    from node.auditor import SpanProvider, judge, prepare
    from pollen import evidence as ev
    from pollen import judgment
    from pollen.receipts import Receipt

    store, cid = published["store"], published["cids"][0]
    stub = pb_grpc.BlockServerStub(grpc.insecure_channel(servers[0].address))
    x = torch.randn(1, 5, C, generator=torch.Generator().manual_seed(8))

    def forward(adapter):
        return stub.Forward(pb.ForwardRequest(session_id=os.urandom(32), start=0, end=3, hidden=wire.encode(x),
                                              adapter=adapter), timeout=30)

    named, plain = forward(cid), forward("")
    m = named.receipt
    receipt = Receipt(server=m.server, version_id=int(m.version_id or "0"), first_block=m.first_block,
                      last_block=m.last_block, term=m.term, kind=m.kind, session_id=m.session_id, step=m.step,
                      input_hash=m.input_hash, output_hash=m.output_hash, blocks_root=m.blocks_root,
                      issued_at=m.issued_at)
    bundle = ev.Evidence(receipt, bytes(m.signature), [x], wire.decode(named.hidden), wire.decode(named.sketches),
                         2, adapter=cid).check()
    with pytest.raises(ev.EvidenceError, match="inputHash"):  # the receipt commits to the CID
        ev.Evidence(receipt, bytes(m.signature), [x], bundle.output, bundle.sketches, 2).check()
    spans = SpanProvider(None, store, 0, "", own=(load_span(tiny_llama, 0, 3), 0, 3))
    dispute = {"first_block": 0, "last_block": 3, "block": 2}
    ready = prepare(store, dispute, ev.put(store, bundle), None, spans)
    assert isinstance(ready, ev.Evidence) and ready.adapter == cid
    assert judge(ready, spans, 1e-3).verdict == "honest"
    out, sketches = wire.decode(plain.hidden), wire.decode(plain.sketches)
    forged = dataclasses.replace(receipt, output_hash=hash_tensor(out), blocks_root=judgment.blocks_root(0, sketches))
    lying = ev.Evidence(forged, bytes(m.signature), [x], out, sketches, 2, adapter=cid).check()
    verdict = judge(lying, spans, 1e-3)
    assert verdict.verdict == "faulty", verdict


def test_spot_checks_replay_a_named_adapter_session_with_the_adapter(tiny_llama, servers, published):
    """A session naming an adapter is replayed naming it too (else an honest server would look
    faulty, and a server ignoring the adapter would never be caught); its evidence carries the CID."""
    from client.spotcheck import CheckedModel, SpotChecker

    cid = published["cids"][0]
    extra = ["--adapter-store", str(published["store"].root), "--base-manifest", published["base"], "--adapter", cid]
    full = procs.start(tiny_llama, [(0, 6)], *extra, log_dir=published["tmp"])
    model = CheckedModel.from_pretrained(tiny_llama, initial_peers=[s.address for s in [*servers, *full]],
                                         active_adapter=cid)
    try:
        ids = torch.randint(0, 320, (1, 5), generator=torch.Generator().manual_seed(8))
        with model.inference_session(max_length=9) as session:
            model.generate(ids, max_new_tokens=4, session=session)
        results = SpotChecker(model, tolerance=0.05, probability=1.0).check_session(session)
        assert results and all(r.verdict == "ok" for r in results), [(r.verdict, r.note) for r in results]
        assert {h.adapter for h in session.hop_logs()} == {cid}
        assert session.hop_logs()[0].evidence(0, session.hop_logs()[0].start).adapter == cid
    finally:
        model.close()
        procs.stop_all(full)
