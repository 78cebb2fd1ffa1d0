"""Disputes from the client's side: evidence to the content store, open with the bond (commit,
then reveal one block later), then push the dispute through its stages (draw once the draw
block is mined, rule once every auditor revealed or the reveal deadline passed, settle once the
appeal window closed) and report each step as it happens. Appeals are not pushed here: a client
that disagrees with a first ruling appeals by hand (`Chain.appeal`, `ape run vote --appeal`).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from client.errors import ClientError
from pollen import evidence as ev
from pollen.chain import ChainError
from pollen.disputes import next_action, revealed as votes_revealed

log = logging.getLogger("pollen.client.disputes")


class DisputeError(ClientError):
    def __init__(self, dispute_id: int, problem: str):
        super().__init__(f"dispute {dispute_id}: {problem}")


@dataclass
class Timeline:
    """(seconds since opening, block, what happened) for the summary."""

    dispute_id: int
    opened_at: float
    opened_block: int
    events: list[tuple[float, int, str]] = field(default_factory=list)
    outcome: str = "pending"
    named_block: int | None = None  # the block the dispute names (bisected by the spot check)
    step: int | None = None  # the step of the disputed receipt

    def add(self, block: int, what: str) -> None:
        self.events.append((time.time() - self.opened_at, block, what))


class Challenger:
    def __init__(self, chain, store, on_progress: Callable[[str], None] | None = None,
                 poll_s: float = 0.5):
        self.chain, self.store, self.poll_s = chain, store, poll_s
        self.say = on_progress or (lambda text: log.info("%s", text))
        self._lock = threading.Lock()

    def open(self, evidence: ev.Evidence) -> Timeline:
        cid = ev.put(self.store, evidence)
        r = evidence.receipt
        self.say(f"evidence bundle {cid} ({len(evidence.inputs)} step(s)) stored")
        dispute_id = self.chain.open_dispute(r, evidence.signature, cid, evidence.block)
        block = self.chain.w3.eth.block_number
        tl = Timeline(dispute_id, time.time(), block, named_block=evidence.block, step=r.step)
        tl.add(block, f"opened against {r.server} (blocks [{r.first_block}, {r.last_block}), block {evidence.block} "
                      f"named, step {r.step}), bond {self.chain.dispute(dispute_id)['bond'] / 1e18:g}")
        self.say(f"dispute #{dispute_id} opened at block {block}")
        return tl

    def follow(self, tl: Timeline, timeout_s: float = 600.0) -> Timeline:
        """Push and watch the dispute until resolved; returns the completed timeline."""
        deadline, seen = time.monotonic() + timeout_s, {"committed": 0, "revealed": 0}
        while time.monotonic() < deadline:
            d = self.chain.dispute(tl.dispute_id)
            block = self.chain.w3.eth.block_number
            if d["stage"] == "resolved":
                tl.outcome = d["outcome"]
                tl.add(block, f"resolved: {d['outcome']}")
                self.say(f"dispute #{tl.dispute_id} resolved: {d['outcome']}")
                return tl
            self._report_votes(tl, d, block, seen)
            self._push(tl, d, block)
            time.sleep(self.poll_s)
        raise DisputeError(tl.dispute_id, f"not resolved within {timeout_s:.0f} s")

    def _report_votes(self, tl: Timeline, d, block: int, seen: dict) -> None:
        revealed = votes_revealed(d)
        if d["stage"] == "voting" and not seen.get("drawn"):  # whoever pushed the draw
            seen["drawn"] = True
            tl.add(block, "auditors drawn: " + ", ".join(d["auditors"]))
            self.say(tl.events[-1][2])
        if d["committed_count"] > seen["committed"]:
            seen["committed"] = d["committed_count"]
            tl.add(block, f"{d['committed_count']}/{d['drawn_count']} auditors committed")
            self.say(tl.events[-1][2])
        if revealed > seen["revealed"]:
            seen["revealed"] = revealed
            tl.add(block, f"{revealed}/{d['drawn_count']} revealed ({d['faulty_votes']} faulty, "
                          f"{d['honest_votes']} honest, {d['abstain_votes']} abstained)")
            self.say(tl.events[-1][2])

    def _push(self, tl: Timeline, d, block: int) -> None:
        with self._lock:  # one transaction at a time per account (disputes followed in threads)
            self._push_locked(tl, d, block)

    def _push_locked(self, tl: Timeline, d, block: int) -> None:
        try:
            action = next_action(d, self._now(), block)
            if action == "draw":
                self.chain.draw_auditors(tl.dispute_id)
            elif action == "resolve" and self.chain.resolve(tl.dispute_id) == "appealable":
                tl.add(block, f"first ruling: {self.chain.dispute(tl.dispute_id)['first_ruling']}; "
                              f"appeal window open")
                self.say(tl.events[-1][2])
        except ChainError as exc:  # another party pushed first, or the stage moved on
            log.info("dispute %d: %s", tl.dispute_id, exc)

    def _now(self) -> int:
        return self.chain.w3.eth.get_block("latest")["timestamp"]


def balances(chain, accounts: dict[str, str]) -> dict[str, dict[str, float]]:
    """name -> {staked, unbonding, credits} in native units, for before/after tables."""
    out = {}
    for name, address in accounts.items():
        a = chain.account_of(address)
        out[name] = {"staked": a["staked"] / 1e18, "unbonding": a["unbonding"] / 1e18,
                     "credits": chain.credits_of(address) / 1e18}
    return out
