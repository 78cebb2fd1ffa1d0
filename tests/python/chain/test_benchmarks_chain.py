"""Living benchmarks on a real anvil: a dataset published to the content store, a benchmark
registered on chain, an evaluation requested, four staked servers' evaluators (node/evaluator.py,
each with its own key) drawn, scoring the version, committing and revealing; the median lands on
chain; then `pollen publish --require-improvement` refuses a worse successor and accepts one
that is no worse."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from chainhelp import advance
from pollen.benchmarks_onchain import (BenchmarkError, BenchmarkRegistry, Example, NotAnImprovement, compare,
                                       deploy_benchmark_registry, evaluate, fetch_dataset, local_scorer,
                                       parse_dataset, publish_dataset, require_improvement, to_score)
from pollen.chain import ContractReverted, Deployment
from pollen.publish import publish_checkpoint, register_version
from pollen.store import LocalStore

pytestmark = pytest.mark.anvil
ROOT = Path(__file__).resolve().parents[3]
SMOLLM2 = ROOT / ".cache" / "models" / "smollm2-135m"
FEE = 3 * 10**16


def tiny_with_tokenizer(out: Path, seed: int = 0) -> Path:
    """A tiny random Llama with SmolLM2's vocabulary and tokenizer files."""
    from pollen.model.tiny import make_checkpoint

    make_checkpoint("llama", out, seed=seed, vocab_size=49152)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(SMOLLM2 / name, out / name)
    return out


def load(folder: Path):
    from pollen.benchmarks_onchain import load_local_model

    return load_local_model(folder)


def own_greedy_dataset(model, tok, n: int = 12) -> list[Example]:
    """Prompts answered by the parent's own greedy continuation (it scores well, others less)."""
    out = []
    for i in range(40):
        ids = tok(f"Record {i}: the value is", return_tensors="pt")["input_ids"]
        with torch.no_grad():
            for _ in range(2):
                ids = torch.cat([ids, model(ids).logits[:, -1:].argmax(-1)], dim=1)
        answer = tok.decode(ids[0, -2:])
        if answer.strip() and len(out) < n:
            out.append(Example(f"Record {i}: the value is", answer))
    return out


@pytest.fixture(scope="module")
def world(roles, deployment, signers, tmp_path_factory):
    """Deployed contracts + BenchmarkRegistry (K=3, quorum 2), a published parent version, four
    staked servers on it, and a benchmark of the parent's model."""
    tmp = tmp_path_factory.mktemp("bench")
    owner = roles["owner"]
    address = deploy_benchmark_registry(owner, "anvil", k=3, quorum=2, draw_delay_blocks=2)
    dep = Deployment(**{**deployment.__dict__, "contracts": {**deployment.contracts, "BenchmarkRegistry": address}})
    store = LocalStore(tmp / "store")
    parent_dir = tiny_with_tokenizer(tmp / "parent")
    published = publish_checkpoint(parent_dir, store, name="tiny-parent", tolerance=0.2)
    model_id = owner.create_model("tiny-bench")
    version = register_version(owner, model_id, published)
    for i, name in enumerate(["op1", "op2", "op3", "op4"]):
        roles[name].stake(roles[name].min_stake())
        roles[name].register(signers[i].address, f"grpc://127.0.0.1:{7100 + i}", version, 0, 6, 10)
    model, tok = load(parent_dir)
    cid = publish_dataset(store, own_greedy_dataset(model, tok))
    bench = BenchmarkRegistry.of(owner.__class__(owner.w3, dep, None))
    bench_id = BenchmarkRegistry(owner, address).register_benchmark(model_id, cid, "answer_loglik", tolerance=0.001)
    return dict(tmp=tmp, dep=dep, address=address, store=store, parent_dir=parent_dir, model=model, tok=tok,
                model_id=model_id, version=version, manifest=published.manifest_cid, cid=cid, bench_id=bench_id,
                reader=bench)


@pytest.fixture(scope="module")
def swarm_peers(world):
    """Two real block-server processes serving the parent version's 6 blocks as (0, 3) + (3, 6)."""
    sys.path.insert(0, str(ROOT / "tests" / "python" / "swarm"))
    import procs

    servers = procs.start(world["parent_dir"], [(0, 3), (3, 6)], log_dir=world["tmp"])
    yield [s.address for s in servers]
    procs.stop_all(servers)


def evaluators(roles, world, loads, peers):
    """Each operator's evaluator; its model runs the subject through the swarm's servers."""
    from client.model import DistributedModelForCausalLM
    from node.evaluator import Evaluator

    def load_model(subject):
        loads.append(subject)
        if subject.manifest_cid != world["manifest"]:
            raise BenchmarkError(f"unknown manifest {subject.manifest_cid}")
        return DistributedModelForCausalLM.from_pretrained(world["parent_dir"], initial_peers=peers), world["tok"]

    return {n: Evaluator(BenchmarkRegistry(roles[n], world["address"]), world["store"], load_model, log=print,
                         from_block=roles[n].w3.eth.block_number) for n in ["op1", "op2", "op3", "op4"]}


def run_until_settled(evs: dict, reader: BenchmarkRegistry, rid: int, rounds: int = 8) -> list[str]:
    log = []
    for _ in range(rounds):
        for name, ev in evs.items():
            log += [f"{name}: {a}" for a in ev.step()]
        if reader.request(rid)["stage"] in ("finalized", "lapsed"):
            return log
        advance(reader.chain, blocks=1)
    raise AssertionError(f"request {rid} not settled: {log}")


def test_dataset_round_trips_through_the_store(world):
    examples = fetch_dataset(world["store"], world["cid"])
    assert len(examples) == 12 and publish_dataset(world["store"], examples) == world["cid"]
    assert parse_dataset(b'{"text": "2 + 2 =", "label": 4}\n') == [Example("2 + 2 =", " 4")]
    for bad in (b"", b'{"prompt": "x"}\n', b"not json\n", b"[1]\n", b'{"prompt": "x", "answer": " "}\n',
                b'{"prompt": "x", "answer": "y"}\n\xff\n'):
        with pytest.raises(BenchmarkError):
            parse_dataset(bad)


@pytest.fixture(scope="module")
def evaluated(roles, world, swarm_peers):
    """One evaluation of the parent version, requested by the challenger, run by the evaluators
    through two real server processes."""
    reader = BenchmarkRegistry(roles["challenger"], world["address"])
    loads = []
    evs = evaluators(roles, world, loads, swarm_peers)
    rid = reader.request_evaluation("version", world["version"], world["bench_id"], fee=FEE)
    return reader, rid, run_until_settled(evs, reader, rid), loads, evs


def test_drawn_evaluators_score_the_version_and_the_median_lands_on_chain(roles, world, evaluated):
    reader, rid, log, loads, evs = evaluated
    r = reader.request(rid)
    assert r["stage"] == "finalized" and r["drawn_count"] == 3 and r["revealed_count"] == 3, log
    drawn = reader.contract.functions.evaluatorsOf(rid).call()
    assert sum("committed" in line for line in log) == 3 and sum("revealed" in line for line in log) == 3
    local = evaluate(world["model"], world["tok"], fetch_dataset(world["store"], world["cid"]), "answer_loglik")
    onchain = reader.score_of("version", world["version"], world["bench_id"])
    assert abs(onchain - local) < 1e-4, (onchain, local)  # the swarm's float32 vs plain transformers
    revealed = [reader.entry(rid, a)["score"] for a in reader.contract.functions.evaluatorsOf(rid).call()]
    assert to_score(onchain) == sorted(revealed)[1]
    assert {s.kind for s in loads} == {"version"} and len(loads) == 3
    for a in drawn:
        assert reader.credits(a) == FEE // 3
    ev = evs[next(n for n in evs if roles[n].address == drawn[0])]
    before = roles["owner"].w3.eth.get_balance(drawn[0])
    ev.registry.withdraw()
    assert roles["owner"].w3.eth.get_balance(drawn[0]) > before
    with pytest.raises(ContractReverted, match="BenchmarkRegistry_NothingToWithdraw"):
        ev.registry.withdraw()


def test_the_publisher_and_strangers_cannot_commit(roles, world):
    owner_bench = BenchmarkRegistry(roles["owner"], world["address"])
    rid = owner_bench.request_evaluation("version", world["version"], world["bench_id"], fee=FEE)
    advance(owner_bench.chain, blocks=3)
    drawn = owner_bench.draw(rid)
    assert roles["owner"].address not in drawn and len(drawn) == 3
    with pytest.raises(ContractReverted, match="BenchmarkRegistry_NotEvaluator"):
        owner_bench.commit_score(rid, 10**6, b"\x00" * 32)


def _publish(world, checkpoint: Path, *extra: str):
    key = world["tmp"] / "owner.key"
    key.write_text(_owner_key())
    dep = world["tmp"] / "deployment.json"
    world["dep"].save(dep)
    args = [sys.executable, "-m", "pollen.cli", "publish", str(checkpoint), "--deployment", str(dep),
            "--key-file", str(key), "--store", str(world["tmp"] / "store"), "--tolerance", "0.2",
            "--parent-version", str(world["version"]), *extra]
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)


def _owner_key() -> str:
    from devstack.anvil import dev_keys

    return dev_keys(1)[0]


def _worse(world) -> Path:
    model, _ = load(world["parent_dir"])
    torch.manual_seed(1)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "layers" in n and p.dim() == 2:
                p.add_(torch.randn_like(p) * 0.3)
    out = world["tmp"] / "worse"
    model.save_pretrained(str(out))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(SMOLLM2 / name, out / name)
    return out


def test_require_improvement_refuses_a_worse_successor_and_accepts_a_no_worse_one(roles, world, evaluated):
    recorded = world["reader"].score_of("version", world["version"], world["bench_id"])
    assert recorded is not None
    worse = _worse(world)
    versions_before = roles["owner"].versions.functions.versionCount().call()
    refused = _publish(world, worse, "--require-improvement")
    assert refused.returncode != 0, refused.stdout
    assert "does not improve on its parent" in refused.stderr
    assert f"parent version {world['version']} scored {recorded:.6f}" in refused.stderr
    ours = local_scorer(world["store"], *load(worse))(world["reader"].benchmark(world["bench_id"]))
    assert ours < recorded and f"candidate {ours:.6f}" in refused.stderr
    assert roles["owner"].versions.functions.versionCount().call() == versions_before  # nothing published
    same = world["tmp"] / "same"
    shutil.copytree(world["parent_dir"], same)
    accepted = _publish(world, same, "--require-improvement", "--name", "tiny-child")
    assert accepted.returncode == 0, accepted.stderr[-2000:]
    child = int(accepted.stdout.split("version ")[-1])
    assert roles["owner"].version(child)["parent_id"] == world["version"]
    assert f"parent {recorded:.6f}, candidate {recorded:.6f}" in accepted.stdout


def lora_folder(out: Path, parent_dir: Path, b_scale: float) -> Path:
    """A peft-layout LoRA (r 4 on q_proj, v_proj) for the parent; B = 0 leaves the model unchanged."""
    from safetensors.torch import save_file

    model, _ = load(parent_dir)
    g = torch.Generator().manual_seed(3)
    tensors = {}
    for i, layer in enumerate(model.model.layers):
        for t in ("q_proj", "v_proj"):
            lin = getattr(layer.self_attn, t)
            key = f"base_model.model.model.layers.{i}.self_attn.{t}"
            tensors[f"{key}.lora_A.weight"] = torch.randn(4, lin.in_features, generator=g) * 0.3
            tensors[f"{key}.lora_B.weight"] = torch.randn(lin.out_features, 4, generator=g) * b_scale
    out.mkdir()
    save_file(tensors, str(out / "adapter_model.safetensors"))
    (out / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4, "lora_alpha": 8,
                                                         "target_modules": ["q_proj", "v_proj"]}))
    return out


def test_require_improvement_refuses_a_worse_adapter_and_registers_a_no_worse_one(roles, world, evaluated):
    recorded = world["reader"].score_of("version", world["version"], world["bench_id"])
    adapters_before = roles["owner"].versions.functions.adapterCount().call()
    gate = ("--adapter-of", str(world["version"]), "--base-checkpoint", str(world["parent_dir"]), "--require-improvement")
    worse = lora_folder(world["tmp"] / "lora-worse", world["parent_dir"], b_scale=1.0)
    refused = _publish(world, worse, *gate)
    assert refused.returncode != 0, refused.stdout
    assert f"parent version {world['version']} scored {recorded:.6f}, candidate" in refused.stderr
    assert roles["owner"].versions.functions.adapterCount().call() == adapters_before  # nothing on chain
    neutral = lora_folder(world["tmp"] / "lora-neutral", world["parent_dir"], b_scale=0.0)
    accepted = _publish(world, neutral, *gate, "--name", "neutral-lora")
    assert accepted.returncode == 0, accepted.stderr[-2000:]
    assert f"parent {recorded:.6f}, candidate {recorded:.6f}" in accepted.stdout
    adapter_id = int(accepted.stdout.split("adapter ")[-1].split()[0])
    base, _, cid, adapter_name, _ = roles["owner"].versions.functions.getAdapter(adapter_id).call()
    assert (base, adapter_name) == (world["version"], "neutral-lora") and cid in accepted.stdout


def test_a_published_lora_is_applied_to_the_local_model(world):
    from pollen.adapters import AdapterError, publish_lora
    from pollen.benchmarks_onchain import with_published_lora

    folder = lora_folder(world["tmp"] / "lora-apply", world["parent_dir"], b_scale=1.0)
    cid, _ = publish_lora(folder, world["store"], world["manifest"])
    model, tok = load(world["parent_dir"])
    ids = tok("Record 3: the value is", return_tensors="pt")["input_ids"]
    adapted = with_published_lora(model, world["store"], cid, world["manifest"])
    with torch.no_grad():
        changed, plain = adapted(ids).logits, model(ids).logits
    assert not torch.allclose(changed, plain) and torch.allclose(model(ids).logits, plain)  # only inside the call
    other = publish_checkpoint(tiny_with_tokenizer(world["tmp"] / "other", seed=5), world["store"], name="other")
    with pytest.raises(AdapterError, match="is for base version"):
        with_published_lora(model, world["store"], cid, other.manifest_cid)


def test_require_improvement_needs_something_to_compare(roles, world, evaluated):
    reader = world["reader"]
    other = roles["owner"].publish_version(world["model_id"], "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
                                           6, 0, 10_000)
    comparisons = compare(reader, "version", other, world["model_id"], lambda b: 0.0)
    assert [c.parent for c in comparisons] == [None]
    with pytest.raises(BenchmarkError, match="nothing to compare"):
        require_improvement(comparisons, world["model_id"])
    parent = reader.score_of("version", world["version"], world["bench_id"])
    better = compare(reader, "version", world["version"], world["model_id"], lambda b: parent + 0.5)
    assert require_improvement(better, world["model_id"]) == better
    with pytest.raises(NotAnImprovement, match=f"scored {parent:.6f}, candidate {parent - 0.5:.6f}"):
        require_improvement(compare(reader, "version", world["version"], world["model_id"], lambda b: parent - 0.5),
                            world["model_id"])


def test_an_evaluator_that_cannot_score_gets_nothing_and_a_restarted_one_still_reveals(roles, world, evaluated):
    """One drawn evaluator cannot fetch/run the benchmark (it commits nothing); the others are
    restarted between commit and reveal and reveal from their state files; the median lands."""
    from node.evaluator import Evaluator

    reader = BenchmarkRegistry(roles["challenger"], world["address"])
    start = reader.chain.w3.eth.block_number
    rid = reader.request_evaluation("version", world["version"], world["bench_id"], fee=FEE)
    advance(reader.chain, blocks=3)
    drawn = reader.draw(rid)
    broken = drawn[0]
    names = {roles[n].address: n for n in ["op1", "op2", "op3", "op4"]}

    def make(address):
        def load_model(subject):
            if address == broken:
                raise BenchmarkError("dataset unreachable from this node")
            return world["model"], world["tok"]

        chain = roles[names[address]]
        return Evaluator(BenchmarkRegistry(chain, world["address"]), world["store"], load_model,
                         state_path=world["tmp"] / f"evaluator-{address}.json", log=lambda *_: None, from_block=start)

    before = {a: reader.credits(a) for a in drawn}
    for a in drawn:
        assert make(a).step() == ([] if a == broken else [f"request {rid}: committed"])
    advance(reader.chain, seconds=301)  # past the commit deadline: the broken one never committed
    for a in drawn[1:]:  # fresh processes: salts and scores come from the state files
        (line,) = make(a).step()
        assert line == f"request {rid}: revealed {reader.entry(rid, a)['score']}"
        assert reader.entry(rid, a)["state"] == "revealed"
    advance(reader.chain, seconds=301)
    assert make(drawn[1]).step()[-1].startswith(f"request {rid}: finalized (score")
    assert reader.request(rid)["revealed_count"] == 2
    assert reader.credits(broken) == before[broken]
    for a in drawn[1:]:
        assert reader.credits(a) == before[a] + FEE // 2


def test_an_adapter_is_evaluated_on_chain_by_evaluators_holding_the_base_checkpoint(roles, world, evaluated):
    """A LoRA published by a non-server is scored by drawn evaluators using node.evaluator's
    local_loader (the base checkpoint + the adapter's CID-verified shards)."""
    from pollen.adapters import publish_lora
    from pollen.benchmarks_onchain import with_published_lora
    from node.evaluator import Evaluator, local_loader

    cid, _ = publish_lora(lora_folder(world["tmp"] / "lora-eval", world["parent_dir"], b_scale=0.5), world["store"],
                          world["manifest"], name="half-lora")
    adapter_id = roles["owner"].publish_adapter(world["version"], cid, "half-lora", "lora")
    reader = BenchmarkRegistry(roles["challenger"], world["address"])
    start = reader.chain.w3.eth.block_number
    rid = reader.request_evaluation("adapter", adapter_id, world["bench_id"], fee=FEE)
    evs = {n: Evaluator(BenchmarkRegistry(roles[n], world["address"]), world["store"],
                        local_loader({world["manifest"]: world["parent_dir"]}, world["store"]), log=print,
                        from_block=start) for n in ["op1", "op2", "op3", "op4"]}
    log = run_until_settled(evs, reader, rid)
    assert reader.request(rid)["stage"] == "finalized", log
    model, tok = load(world["parent_dir"])
    local = evaluate(with_published_lora(model, world["store"], cid, world["manifest"]), tok,
                     fetch_dataset(world["store"], world["cid"]), "answer_loglik")
    scored = reader.score_of("adapter", adapter_id, world["bench_id"])
    assert to_score(scored) == to_score(local)
    assert scored != reader.score_of("version", world["version"], world["bench_id"])  # the LoRA changed the model


def test_exact_match_is_greedy_decoding_and_loglik_is_the_answer_tokens_mean(world):
    model, tok = world["model"], world["tok"]
    examples = fetch_dataset(world["store"], world["cid"])
    hits, means = [], []
    for e in examples:
        prompt = tok(e.prompt, return_tensors="pt")["input_ids"]
        answer = tok(e.answer, add_special_tokens=False)["input_ids"]
        out = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=len(answer), do_sample=False,
                             pad_token_id=0)
        hits.append(out[0, prompt.shape[1]:].tolist() == answer)
        with torch.no_grad():
            logits = model(torch.cat([prompt, torch.tensor([answer])], dim=1)).logits[0, prompt.shape[1] - 1:-1]
        means.append(torch.log_softmax(logits, -1)[range(len(answer)), answer].mean().item())
    assert evaluate(model, tok, examples, "exact_match") == pytest.approx(sum(hits) / len(hits))
    assert evaluate(model, tok, examples, "answer_loglik") == pytest.approx(sum(means) / len(means), abs=1e-6)
    with pytest.raises(BenchmarkError, match="unknown metric"):
        evaluate(model, tok, examples, "bleu")


def test_bench_cli_registers_requests_and_lists_scores(roles, world, evaluated):
    from devstack.anvil import dev_keys

    keys = dev_keys(6)
    owner_key, requester_key = world["tmp"] / "owner-bench.key", world["tmp"] / "requester.key"
    owner_key.write_text(keys[0])
    requester_key.write_text(keys[5])  # the challenger role
    dep = world["tmp"] / "deployment-bench.json"
    world["dep"].save(dep)

    def bench(*args):
        out = subprocess.run([sys.executable, "-c", "from pollen.publish_cli import bench; bench()", *args,
                              "--deployment", str(dep)], cwd=ROOT, capture_output=True, text=True, timeout=120)
        return out.returncode, out.stdout + out.stderr

    model = roles["owner"].create_model("bench-cli")
    data = world["tmp"] / "qa.jsonl"
    data.write_text('{"prompt": "2 + 2 =", "answer": " 4"}\n{"text": "The sky is", "label": "blue"}\n')
    rc, out = bench("register", "--key-file", str(owner_key), "--store", str(world["tmp"] / "store"),
                    "--model-id", str(model), "--dataset", str(data), "--metric", "exact_match")
    assert rc == 0, out
    bench_id = int(out.split("benchmark ")[1].split()[0])
    assert world["reader"].benchmark(bench_id).metric == "exact_match" and world["reader"].benchmark(bench_id).model_id == model
    rc, out = bench("register", "--key-file", str(requester_key), "--store", str(world["tmp"] / "store"),
                    "--model-id", str(model), "--dataset", str(data))
    assert rc != 0 and "BenchmarkRegistry_NotMaintainer" in out  # only the model's maintainers
    data.write_text('{"prompt": "x"}\n')
    rc, out = bench("register", "--key-file", str(owner_key), "--model-id", str(model), "--dataset", str(data))
    assert rc != 0 and "line 1: needs the keys prompt and answer" in out
    rc, out = bench("request", "--key-file", str(requester_key), "--version", str(world["version"]),
                    "--benchmark", str(world["bench_id"]), "--fee-wei", str(FEE))
    assert rc == 0 and "evaluation request" in out, out
    rid = int(out.split("evaluation request ")[1].split()[0])
    assert world["reader"].request(rid)["stage"] == "awaiting_draw"
    rc, out = bench("scores", "--model-id", str(world["model_id"]))
    recorded = world["reader"].score_of("version", world["version"], world["bench_id"])
    assert rc == 0 and f"benchmark {world['bench_id']} answer_loglik: version {world['version']}: {recorded:.6f}" in out, out


class CliEvaluator:
    """`pollen node evaluate --once` as an operator runs it (a separate process per pass)."""

    def __init__(self, chain, world):
        folder = world["tmp"] / f"cli-{chain.address}"
        folder.mkdir(exist_ok=True)
        (folder / "operator.key").write_text("0x" + chain.signing_key.hex())
        world["dep"].save(folder / "deployment.json")
        self.cmd = [sys.executable, "-m", "pollen.cli", "node", "evaluate", "--once",
                    "--deployment", str(folder / "deployment.json"), "--key-file", str(folder / "operator.key"),
                    "--store", str(world["store"].root), "--state-dir", str(folder),
                    "--checkpoint", f"{world['manifest']}={world['parent_dir']}"]

    def step(self) -> list[str]:
        out = subprocess.run(self.cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            raise AssertionError(out.stderr[-2000:])
        return out.stdout.splitlines()


def test_the_node_evaluate_command_answers_its_draws(roles, world, evaluated):
    """One operator runs `pollen node evaluate` (the others in-process): requests finalize and the
    command scores, commits and reveals for its operator when drawn (3 of 4 are drawn, stake-
    weighted: requested again until it is, at most 4 times)."""
    from node.evaluator import Evaluator, local_loader

    reader = BenchmarkRegistry(roles["challenger"], world["address"])
    cli = CliEvaluator(roles["op1"], world)
    for _ in range(4):
        start = reader.chain.w3.eth.block_number
        rid = reader.request_evaluation("version", world["version"], world["bench_id"], fee=FEE)
        evs = {"op1": cli, **{n: Evaluator(BenchmarkRegistry(roles[n], world["address"]), world["store"],
                                           local_loader({world["manifest"]: world["parent_dir"]}, world["store"]),
                                           log=print, from_block=start) for n in ["op2", "op3", "op4"]}}
        log = run_until_settled(evs, reader, rid)
        assert reader.request(rid)["stage"] == "finalized", log
        if reader.entry(rid, roles["op1"].address)["state"] != "none":
            break
    assert reader.entry(rid, roles["op1"].address)["state"] == "revealed", log
    assert any(line == f"op1: request {rid}: committed" for line in log), log
    bad = subprocess.run([*CliEvaluator(roles["op1"], world).cmd[:-1], "no-equals-sign"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "expected MANIFEST_CID=DIR" in bad.stderr
