"""The operator's evaluator: when BenchmarkRegistry draws this node for an evaluation, fetch the
benchmark's dataset by CID, run its metric on the subject (a version, or an adapter on its base
version) through the model `load_model` gives it, commit the score, reveal it once reveals open,
and settle the request; it also draws requests whose draw block has passed (anyone may).

    evaluator = Evaluator(BenchmarkRegistry.of(chain), store, load_model, state_path=".cache/evaluator.json")
    while running: evaluator.step()        # e.g. from the daemon's housekeeping loop

`load_model(subject) -> (model, tokenizer)` is injected: the daemon cannot import `client`, so
whoever starts it passes a loader that builds the swarm's distributed model for the subject's
manifest (and `active_adapter=subject.adapter_cid`), or uses `local_loader` (the operator holds
the version's checkpoint folder; adapters are applied from their CID-verified shards). Salts and
scores are written to `state_path` before a commitment is sent, so a restarted node can still
reveal.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pollen.benchmarks_onchain import (BenchmarkError, BenchmarkRegistry, evaluate, fetch_dataset, load_local_model,
                                       to_score)
from pollen.errors import PollenError


@dataclass(frozen=True)
class Subject:
    """What to evaluate: a version, or an adapter applied to its base version."""

    kind: str  # "version" | "adapter"
    subject_id: int
    version_id: int
    manifest_cid: str
    adapter_cid: str = ""


ModelLoader = Callable[[Subject], "tuple[Any, Any]"]


class Evaluator:
    def __init__(self, registry: BenchmarkRegistry, store, load_model: ModelLoader,
                 state_path: str | Path | None = None, log: Callable[[str], None] = print,
                 from_block: int | None = None):
        self.registry, self.store, self.load_model, self.log = registry, store, load_model, log
        self.chain = registry.chain
        self.me = self.chain.address
        self.state_path = Path(state_path) if state_path else None
        self.state = self._load_state(from_block)

    # ---- state
    def _load_state(self, from_block: int | None) -> dict:
        if self.state_path and self.state_path.exists():
            return json.loads(self.state_path.read_text())
        start = self.chain.deployment.deployed_at_block if from_block is None else from_block
        return {"next_block": start, "requests": {}, "awaiting": {}}

    def _save(self) -> None:
        if self.state_path is None:
            return
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state))
        tmp.replace(self.state_path)

    # ---- the loop
    def step(self) -> list[str]:
        """Scan new blocks, then push every request this node is part of one stage on; returns
        what it did (one line per action)."""
        head = self.chain.w3.eth.block_number
        self._scan(head)
        now = self.chain.w3.eth.get_block(head)["timestamp"]
        actions = [a for rid, draw_block in list(self.state["awaiting"].items()) if (a := self._draw(rid, draw_block, head))]
        actions += [a for rid in list(self.state["requests"]) if (a := self._advance(int(rid), now))]
        self._save()
        return actions

    def _scan(self, head: int) -> None:
        start = self.state["next_block"]
        if start > head:
            return
        requested = self.registry.contract.events.EvaluationRequested().get_logs(from_block=start, to_block=head)
        for e in requested:
            self.state["awaiting"][str(e["args"]["requestId"])] = e["args"]["drawBlock"]
        for rid in self.registry.drawn_requests(self.me, start, head):
            self.state["requests"].setdefault(str(rid), {})
        self.state["next_block"] = head + 1

    def _draw(self, rid: str, draw_block: int, head: int) -> str:
        if head <= draw_block:
            return ""
        del self.state["awaiting"][rid]
        if self.registry.request(int(rid))["stage"] != "awaiting_draw":
            return ""
        drawn = self.registry.draw(int(rid))
        if self.me in drawn:
            self.state["requests"].setdefault(rid, {})
        return f"request {rid}: drew {len(drawn)} evaluator(s)" if drawn else f"request {rid}: lapsed at the draw"

    def _advance(self, rid: int, now: int) -> str:
        r = self.registry.request(rid)
        mine = self.state["requests"][str(rid)]
        if r["stage"] in ("finalized", "lapsed"):
            del self.state["requests"][str(rid)]
            return ""
        state = self.registry.entry(rid, self.me)["state"]
        if state == "drawn" and now <= r["commit_deadline"]:
            return self._commit(rid, r, mine)
        reveal_open = now > r["commit_deadline"] or r["committed_count"] == r["drawn_count"]
        if state == "committed" and reveal_open and now <= r["reveal_deadline"] and "salt" in mine:
            self.registry.reveal_score(rid, mine["score"], bytes.fromhex(mine["salt"]))
            return f"request {rid}: revealed {mine['score']}"
        if now > r["reveal_deadline"] or r["revealed_count"] == r["drawn_count"]:
            score = self.registry.finalize(rid)
            return f"request {rid}: finalized ({'lapsed' if score is None else f'score {score:.6f}'})"
        return ""

    def _commit(self, rid: int, r: dict, mine: dict) -> str:
        try:
            score = self.score(r)
        except (PollenError, OSError, RuntimeError, ValueError) as exc:
            self.log(f"request {rid}: cannot evaluate ({exc}); not committing")
            return ""
        mine.update(score=score, salt=os.urandom(32).hex())
        self._save()  # before the commitment leaves: a restart must still be able to reveal
        self.registry.commit_score(rid, score, bytes.fromhex(mine["salt"]))
        return f"request {rid}: committed"

    def score(self, request: dict) -> int:
        """Run the request's benchmark on its subject; the on-chain integer score."""
        bench = self.registry.benchmark(request["benchmark_id"])
        examples = fetch_dataset(self.store, bench.dataset_cid)
        model, tokenizer = self.load_model(self.subject(request))
        return to_score(evaluate(model, tokenizer, examples, bench.metric))

    def subject(self, request: dict) -> Subject:
        version = self.chain.version(request["version_id"])
        adapter_cid = ""
        if request["kind"] == "adapter":
            base, _publisher, adapter_cid, _name, _tags = self.chain.versions.functions.getAdapter(
                request["subject_id"]).call()
            if base != request["version_id"]:
                raise BenchmarkError(f"adapter {request['subject_id']} is for version {base}, "
                                     f"not {request['version_id']}")
        return Subject(request["kind"], request["subject_id"], request["version_id"], version["manifest_cid"],
                       adapter_cid)


def local_loader(checkpoints: dict[str, str | Path], store) -> ModelLoader:
    """A loader over checkpoint folders this operator holds, by the manifest CID they were
    published as: the version as a transformers model, an adapter applied to it from the store."""
    cache: dict[str, tuple[Any, Any]] = {}

    def load(subject: Subject):
        from pollen.benchmarks_onchain import with_published_lora

        folder = checkpoints.get(subject.manifest_cid)
        if folder is None:
            raise BenchmarkError(f"no local checkpoint for version {subject.version_id} ({subject.manifest_cid})")
        if subject.manifest_cid not in cache:
            cache[subject.manifest_cid] = load_local_model(folder)
        model, tokenizer = cache[subject.manifest_cid]
        if subject.adapter_cid:
            model = with_published_lora(model, store, subject.adapter_cid, subject.manifest_cid)
        return model, tokenizer

    return load

