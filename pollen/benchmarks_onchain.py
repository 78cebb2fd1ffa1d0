"""Living benchmarks: datasets by CID, metrics run on any HF-like model, and BenchmarkRegistry.

    cid = publish_dataset(store, [Example("The capital of France is", " Paris"), ...])
    bench = BenchmarkRegistry.of(chain)            # address from the deployment (or pass one)
    bench_id = bench.register_benchmark(model_id, cid, "answer_loglik", tolerance=0.01)
    rid = bench.request_evaluation("version", version_id, bench_id, fee=10**16)
    value = evaluate(model, tokenizer, fetch_dataset(store, cid), "answer_loglik")   # evaluator
    bench.score_of("version", version_id, bench_id)  # the agreed score (metric units) or None

Dataset: UTF-8 JSONL, one object per line, either {"prompt": str, "answer": str} or
{"text": str, "label": str|int} (read as prompt=text, answer=" " + label). Metrics, over the
answer tokens given the prompt (prompt tokenized as the model expects, answer without special
tokens, the two id lists concatenated), one teacher-forced forward pass per example:
  * answer_loglik — mean over examples of the mean log-probability of the answer's tokens;
  * exact_match — fraction of examples whose greedy continuation is exactly the answer's tokens
    (every teacher-forced argmax equals the next answer token, which is what greedy decoding of
    len(answer) tokens produces).
Both are higher-is-better. On chain a score is the metric x 1e6, rounded to an integer.

The model is any callable `model(input_ids) -> obj with .logits (1, T, V)` (transformers, or the
swarm's DistributedModelForCausalLM), so this module imports neither `client` nor `node`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from pollen import artifacts
from pollen.chain import Chain, ChainError
from pollen.errors import PollenError

SCALE = 1_000_000  # score units per metric unit (BenchmarkRegistry.SCALE)
METRICS = {"answer_loglik": True, "exact_match": True}  # name -> higher is better
KINDS = {"version": 0, "adapter": 1}  # BenchmarkRegistry.SubjectKind
STAGES = ["none", "awaiting_draw", "scoring", "finalized", "lapsed"]  # BenchmarkRegistry.Stage
ENTRY_STATES = ["none", "drawn", "committed", "revealed"]
MAX_DATASET_BYTES = 8 * 2**20
MAX_EXAMPLES = 10_000
INT64 = 2**63

# Registry parameters per network: evaluators per request, reveals needed, draw delay (blocks),
# commit and reveal periods (s), minimum fee (wei of the native currency).
PRESETS = {
    "anvil": dict(k=3, quorum=2, draw_delay_blocks=2, commit_period=300, reveal_period=300, min_fee=10**15),
    "gnosis": dict(k=5, quorum=3, draw_delay_blocks=5, commit_period=6 * 3600, reveal_period=6 * 3600,
                   min_fee=10**17),
}
# the other public networks take Gnosis's windows (hours: evaluators fetch datasets and weights);
# min_fee is in each chain's native unit (xDAI, FIL), so it is a price, not a copy of another chain's
PRESETS["gnosis-chiado"] = PRESETS["filecoin-calibration"] = PRESETS["filecoin"] = dict(PRESETS["gnosis"])


class BenchmarkError(PollenError):
    """A dataset, metric or benchmark that cannot be used as given."""


class NotAnImprovement(BenchmarkError):
    """A candidate scores worse than its parent on some benchmark."""

    def __init__(self, failures: list["Comparison"]):
        self.failures = failures
        lines = [f"benchmark {c.benchmark.id} ({c.benchmark.metric}, dataset {c.benchmark.dataset_cid}): "
                 f"parent {c.parent_label} scored {c.parent:.6f}, candidate {c.candidate:.6f} "
                 f"({'higher' if c.benchmark.higher_is_better else 'lower'} is better)" for c in failures]
        super().__init__("the candidate does not improve on its parent: " + "; ".join(lines))


# ------------------------------------------------------------------------------ datasets


@dataclass(frozen=True)
class Example:
    prompt: str
    answer: str


def parse_dataset(data: bytes, where: str = "dataset") -> list[Example]:
    """Examples from JSONL bytes; BenchmarkError naming the line for anything malformed."""
    if len(data) > MAX_DATASET_BYTES:
        raise BenchmarkError(f"{where}: {len(data)} bytes, more than the {MAX_DATASET_BYTES} allowed")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BenchmarkError(f"{where}: not UTF-8 ({exc})") from exc
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise BenchmarkError(f"{where}: no examples")
    if len(lines) > MAX_EXAMPLES:
        raise BenchmarkError(f"{where}: {len(lines)} examples, more than the {MAX_EXAMPLES} allowed")
    return [_example(line, f"{where} line {n}") for n, line in lines]


def _example(line: str, where: str) -> Example:
    try:
        obj = json.loads(line)
    except ValueError as exc:
        raise BenchmarkError(f"{where}: not JSON ({exc})") from exc
    if not isinstance(obj, dict):
        raise BenchmarkError(f"{where}: expected an object with prompt/answer or text/label")
    if "prompt" in obj and "answer" in obj:
        prompt, answer = obj["prompt"], obj["answer"]
    elif "text" in obj and "label" in obj:
        prompt, answer = obj["text"], f" {obj['label']}"
    else:
        raise BenchmarkError(f"{where}: needs the keys prompt and answer (or text and label), has {sorted(obj)}")
    if not isinstance(prompt, str) or not isinstance(answer, str) or not prompt or not answer.strip():
        raise BenchmarkError(f"{where}: prompt and answer must be non-empty strings")
    return Example(prompt, answer)


def dataset_bytes(examples: Iterable[Example]) -> bytes:
    """The canonical JSONL of `examples` (same examples, same bytes, same CID)."""
    rows = [json.dumps({"prompt": e.prompt, "answer": e.answer}, ensure_ascii=False, sort_keys=True)
            for e in examples]
    data = ("\n".join(rows) + "\n").encode("utf-8")
    parse_dataset(data)  # refuse to publish what evaluators would refuse to read
    return data


def publish_dataset(store, examples: Iterable[Example]) -> str:
    """Add the dataset to the content store (pinned); returns its CID."""
    added = store.add_bytes(dataset_bytes(examples))
    store.pin(added.cid)
    return added.cid


def fetch_dataset(store, cid: str) -> list[Example]:
    """The examples of a published dataset (verified by CID by the store)."""
    return parse_dataset(store.cat(cid), where=f"dataset {cid}")


# ------------------------------------------------------------------------------ metrics


def evaluate(model, tokenizer, examples: Sequence[Example], metric: str) -> float:
    """The metric of `model` over `examples` (see the module docstring)."""
    import torch

    if metric not in METRICS:
        raise BenchmarkError(f"unknown metric {metric!r}; known: {', '.join(sorted(METRICS))}")
    if not examples:
        raise BenchmarkError("no examples to evaluate")
    values = []
    with torch.no_grad():
        for e in examples:
            logprobs, hits = _answer_logprobs(model, tokenizer, e)
            values.append(float(logprobs.mean()) if metric == "answer_loglik" else float(bool(hits.all())))
    return sum(values) / len(values)


def _answer_logprobs(model, tokenizer, example: Example):
    """Log-probabilities of the answer's tokens, and whether each was the argmax."""
    import torch

    prompt = list(tokenizer(example.prompt)["input_ids"])
    answer = list(tokenizer(example.answer, add_special_tokens=False)["input_ids"])
    if not prompt or not answer:
        raise BenchmarkError(f"example {example.prompt[:40]!r} tokenizes to an empty prompt or answer")
    ids = torch.tensor([prompt + answer])
    out = model(ids)
    logits = (out.logits if hasattr(out, "logits") else out)[0, len(prompt) - 1:-1].float()
    target = torch.tensor(answer)
    logprobs = torch.log_softmax(logits, dim=-1).gather(1, target[:, None])[:, 0]
    return logprobs, logits.argmax(-1) == target


def load_local_model(folder):
    """A checkpoint folder as a plain transformers model (float32, eval mode) and its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError) as exc:
        raise BenchmarkError(f"scoring {folder} needs its tokenizer: {exc}") from exc
    return AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval(), tokenizer


def to_score(value: float) -> int:
    """Metric value -> on-chain integer score (x 1e6, rounded); refuses what int64 cannot hold."""
    if not math.isfinite(value):
        raise BenchmarkError(f"score {value} is not finite")
    score = round(value * SCALE)
    if not -INT64 <= score < INT64:
        raise BenchmarkError(f"score {value} does not fit the registry's int64 x 1e6")
    return score


def from_score(score: int) -> float:
    return score / SCALE


# ------------------------------------------------------------------------------ chain


@dataclass(frozen=True)
class Benchmark:
    id: int
    model_id: int
    dataset_cid: str
    metric: str
    higher_is_better: bool
    tolerance: float  # metric units
    registrant: str

    def better(self, a: float, b: float) -> bool:
        """Whether score `a` is strictly better than `b` on this benchmark."""
        return a > b if self.higher_is_better else a < b


def _kind(kind: str) -> int:
    if kind not in KINDS:
        raise BenchmarkError(f"subject kind must be 'version' or 'adapter', not {kind!r}")
    return KINDS[kind]


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class BenchmarkRegistry:
    """BenchmarkRegistry as one account (the Chain's) sees it."""

    def __init__(self, chain: Chain, address: str):
        self.chain = chain
        self.contract = chain.w3.eth.contract(address=address, abi=artifacts.abi("BenchmarkRegistry"))

    @classmethod
    def of(cls, chain: Chain, address: str | None = None) -> "BenchmarkRegistry":
        """The registry at `address`, else the deployment's "BenchmarkRegistry" entry."""
        address = address or chain.deployment.contracts.get("BenchmarkRegistry")
        if not address:
            raise ChainError("no BenchmarkRegistry in this deployment: pass its address "
                             "(--benchmark-registry) or add it to the deployment file's contracts")
        return cls(chain, chain.w3.to_checksum_address(address))

    @property
    def address(self) -> str:
        return self.contract.address

    def _call(self, fn: str, *args):
        return getattr(self.contract.functions, fn)(*args).call()

    def _struct(self, fn: str, *args) -> dict[str, Any]:
        (item,) = [e for e in self.contract.abi if e.get("type") == "function" and e["name"] == fn]
        names = [_snake(c["name"]) for c in item["outputs"][0]["components"]]
        return dict(zip(names, self._call(fn, *args)))

    def _send(self, fn: str, *args, value: int = 0):
        return self.chain.transact(getattr(self.contract.functions, fn)(*args), fn, value=value)

    def _event(self, receipt, name: str) -> list[dict]:
        from web3.logs import DISCARD

        return [e["args"] for e in getattr(self.contract.events, name)().process_receipt(receipt, errors=DISCARD)]

    # ---- benchmarks
    def register_benchmark(self, model_id: int, dataset_cid: str, metric: str, higher_is_better: bool | None = None,
                           tolerance: float = 0.01) -> int:
        """Register a benchmark (caller must maintain the model); `tolerance` in metric units."""
        if metric not in METRICS:
            raise BenchmarkError(f"unknown metric {metric!r}; known: {', '.join(sorted(METRICS))}")
        if tolerance < 0:
            raise BenchmarkError(f"tolerance must be >= 0, not {tolerance}")
        higher = METRICS[metric] if higher_is_better is None else higher_is_better
        receipt = self._send("registerBenchmark", model_id, dataset_cid, metric, higher, to_score(tolerance))
        return self._event(receipt, "BenchmarkRegistered")[0]["benchmarkId"]

    def benchmark(self, benchmark_id: int) -> Benchmark:
        b = self._struct("getBenchmark", benchmark_id)
        if b["model_id"] == 0:
            raise BenchmarkError(f"benchmark {benchmark_id} does not exist")
        return Benchmark(benchmark_id, b["model_id"], b["dataset_cid"], b["metric"], b["higher_is_better"],
                         from_score(b["tolerance"]), b["registrant"])

    def benchmarks_of(self, model_id: int) -> list[Benchmark]:
        return [self.benchmark(i) for i in self._call("benchmarksOf", model_id)]

    # ---- evaluations
    def request_evaluation(self, kind: str, subject_id: int, benchmark_id: int, fee: int | None = None) -> int:
        """Pay `fee` (default: the registry's minimum) for an evaluation; returns the request id."""
        fee = self._call("minFee") if fee is None else fee
        receipt = self._send("requestEvaluation", _kind(kind), subject_id, benchmark_id, value=fee)
        return self._event(receipt, "EvaluationRequested")[0]["requestId"]

    def draw(self, request_id: int) -> list[str]:
        """Draw the evaluators (empty: the request lapsed instead)."""
        drawn = self._event(self._send("drawEvaluators", request_id), "EvaluatorsDrawn")
        return list(drawn[0]["evaluators"]) if drawn else []

    def commitment(self, request_id: int, score: int, salt: bytes) -> bytes:
        return self._call("commitmentOf", request_id, self.chain.address, score, salt)

    def commit_score(self, request_id: int, score: int, salt: bytes):
        return self._send("commitScore", request_id, self.commitment(request_id, score, salt))

    def reveal_score(self, request_id: int, score: int, salt: bytes):
        return self._send("revealScore", request_id, score, salt)

    def finalize(self, request_id: int) -> float | None:
        """Settle the request: the recorded score (metric units), or None if it lapsed."""
        recorded = self._event(self._send("finalize", request_id), "ScoreRecorded")
        return from_score(recorded[0]["score"]) if recorded else None

    def request(self, request_id: int) -> dict[str, Any]:
        r = self._struct("getRequest", request_id)
        if r["stage"] == 0:
            raise BenchmarkError(f"evaluation request {request_id} does not exist")
        r["stage"] = STAGES[r["stage"]]
        r["kind"] = [k for k, v in KINDS.items() if v == r["kind"]][0]
        return r

    def entry(self, request_id: int, evaluator: str) -> dict[str, Any]:
        e = self._struct("entryOf", request_id, evaluator)
        e["state"] = ENTRY_STATES[e["state"]]
        return e

    def score_of(self, kind: str, subject_id: int, benchmark_id: int) -> float | None:
        """The recorded score (metric units), None if never scored."""
        s = self._struct("scoreOf", _kind(kind), subject_id, benchmark_id)
        return from_score(s["value"]) if s["request_id"] else None

    def drawn_requests(self, evaluator: str, from_block: int, to_block: int) -> list[int]:
        """Ids of the requests whose EvaluatorsDrawn event in [from_block, to_block] names `evaluator`."""
        logs = self.contract.events.EvaluatorsDrawn().get_logs(from_block=from_block, to_block=to_block)
        me = evaluator.lower()
        return [e["args"]["requestId"] for e in logs if me in (a.lower() for a in e["args"]["evaluators"])]

    def credits(self, account: str) -> int:
        return self._call("credits", account)

    def withdraw(self):
        return self._send("withdraw")


def deploy_benchmark_registry(chain: Chain, network: str = "anvil", **overrides) -> str:
    """Deploy a BenchmarkRegistry over the chain's ModelVersionRegistry and ServerRegistry
    (parameters from PRESETS[network], with `overrides`); returns its address."""
    if network not in PRESETS:
        raise BenchmarkError(f"no benchmark parameters for network {network!r}; known: {', '.join(PRESETS)}")
    p = {**PRESETS[network], **overrides}
    factory = chain.w3.eth.contract(abi=artifacts.abi("BenchmarkRegistry"),
                                    bytecode=artifacts.bytecode("BenchmarkRegistry"))
    ctor = factory.constructor(chain.versions.address, chain.registry.address, p["k"], p["quorum"],
                               p["draw_delay_blocks"], p["commit_period"], p["reveal_period"], p["min_fee"])
    return chain.transact(ctor, "deploy BenchmarkRegistry")["contractAddress"]


# ------------------------------------------------------------------------------ improvement


@dataclass(frozen=True)
class Comparison:
    benchmark: Benchmark
    parent_label: str  # e.g. "version 3"
    parent: float | None  # recorded score, None if never evaluated
    candidate: float | None

    @property
    def worse(self) -> bool:
        return self.parent is not None and self.candidate is not None and self.benchmark.better(self.parent,
                                                                                                 self.candidate)


def compare(registry: BenchmarkRegistry, parent_kind: str, parent_id: int, model_id: int,
            candidate_score) -> list[Comparison]:
    """Compare a candidate with its parent on each of the model's benchmarks where the parent
    has a recorded score; `candidate_score(benchmark) -> float` computes (or reads) the
    candidate's score, and is only called for those benchmarks."""
    out = []
    for b in registry.benchmarks_of(model_id):
        parent = registry.score_of(parent_kind, parent_id, b.id)
        out.append(Comparison(b, f"{parent_kind} {parent_id}", parent,
                              None if parent is None else candidate_score(b)))
    return out


def require_improvement(comparisons: list[Comparison], model_id: int) -> list[Comparison]:
    """Raise NotAnImprovement naming both scores where the parent's recorded score is better
    than the candidate's; BenchmarkError when nothing could be compared."""
    if not any(c.parent is not None for c in comparisons):
        raise BenchmarkError(f"nothing to compare: model {model_id} has {len(comparisons)} benchmark(s) and the "
                             "parent has no recorded score on any; request an evaluation of the parent first")
    failures = [c for c in comparisons if c.worse]
    if failures:
        raise NotAnImprovement(failures)
    return comparisons


def local_scorer(store, model, tokenizer):
    """`candidate_score` for `compare`: run each benchmark's metric on a local model."""

    def score(b: Benchmark) -> float:
        return from_score(to_score(evaluate(model, tokenizer, fetch_dataset(store, b.dataset_cid), b.metric)))

    return score


class WithAdapter:
    """A local model with a published LoRA applied to every block (pollen.model.lora's hooks):
    `model(input_ids)` as the swarm computes it for a session naming the adapter."""

    def __init__(self, model, blocks, lora):
        self.model, self.blocks, self.lora = model, blocks, lora

    def __call__(self, input_ids):
        from pollen.model.lora import active

        with active(self.blocks, self.lora):
            return self.model(input_ids)


def with_published_lora(model, store, adapter_cid: str, base_manifest_cid: str) -> WithAdapter:
    """`model` (a transformers model of the base version) with the adapter `adapter_cid` applied,
    its shards fetched and verified by CID; refused if the adapter is for another base."""
    from pollen.adapters import load_lora
    from pollen.manifest import load
    from pollen.model.lora import check

    manifest = load(store, base_manifest_cid)
    lora = load_lora(store, adapter_cid, 0, manifest.num_blocks, base=base_manifest_cid)
    blocks = list(model.get_submodule(manifest.block_prefix.rstrip(".")))
    if len(blocks) != manifest.num_blocks:
        raise BenchmarkError(f"the local model has {len(blocks)} blocks, base version {base_manifest_cid} has "
                             f"{manifest.num_blocks}")
    check(lora, blocks[0], len(blocks))
    return WithAdapter(model, blocks, lora)
