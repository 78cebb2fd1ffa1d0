"""An auditor's duty, out of the daemon: for every dispute this operator was drawn to audit,
DRAWN -> DECIDED (fetch the evidence, recompute, judge; the salt saved before anything is sent)
-> COMMITTED -> REVEALED -> DONE, pushing the dispute along where anyone may (draws, rulings,
settlements: pollen.disputes). One `tick` per daemon tick; a revert realigns the local stage
with the chain (`reconcile`), other chain or store trouble retries on the next tick.
"""

from __future__ import annotations

import logging
import os
from typing import Callable

from node import auditor as aud
from node.daemon_config import DaemonConfig
from node.state import COMMITTED, DECIDED, DONE, DRAWN, REVEALED, emit
from pollen.chain import ChainError, ContractReverted
from pollen.disputes import can_draw, can_rule, can_settle
from pollen.errors import PollenError
from pollen.receipts import Receipt
from pollen.retry import wait_until

log = logging.getLogger("pollen.node.audits")
VOTE_COMMITTED, VOTE_REVEALED = 2, 3  # DisputeCourt.VoteState: >= these mean done


class AuditDuty:
    """The audit state machine of one operator (`chain`'s account)."""

    def __init__(self, chain, store, cfg: DaemonConfig, tolerance: float, own_span: Callable, save: Callable):
        self.chain, self.store, self.cfg, self.tolerance = chain, store, cfg, tolerance
        self.own_span = own_span  # () -> (span model, first, last) as the float32 reference, or None
        self.save = save  # persist the daemon's state (audits included)
        self.me = chain.address

    def tick(self, audits: dict) -> None:
        """Advance every unfinished audit one stage as far as the chain allows."""
        for audit in list(audits.values()):
            if audit.stage == DONE:
                continue
            try:
                self.advance(audit)
            except ContractReverted as exc:
                log.warning("dispute %d: %s", audit.dispute_id, exc)
                self.reconcile(audit)
            except PollenError as exc:  # chain/store trouble: the next tick tries again
                log.warning("dispute %d: %s (will retry)", audit.dispute_id, exc)
            self.save()

    def advance(self, audit) -> None:
        d = self.chain.dispute(audit.dispute_id)
        if d["stage"] == "resolved":
            audit.stage, audit.outcome = DONE, d["outcome"]
            return
        now = self.chain.w3.eth.get_block("latest")["timestamp"]
        if audit.stage == DRAWN:
            self.decide(audit, d)
        if audit.stage == DECIDED and now <= d["commit_deadline"]:
            self.commit(audit)
        if audit.stage == COMMITTED and self.reveal_open(d, now):
            self.reveal(audit)
        if audit.stage in (DECIDED, DRAWN) and now > d["commit_deadline"]:
            audit.stage, audit.note = DONE, audit.note + " (commit window missed)"
        if audit.stage == REVEALED:
            self.push_resolve(audit, self.chain.dispute(audit.dispute_id), now)

    def push_draws(self, draws: list) -> None:
        """Draw auditors for `draws` (dispute ids) whose draw block is mined (staggered so helpers
        rarely race); settled ones leave the list."""
        block = self.chain.w3.eth.block_number
        for dispute_id in list(draws):
            d = self.chain.dispute(dispute_id)
            if d["stage"] != "awaiting_draw":
                draws.remove(dispute_id)
            elif can_draw(d, block - int(self.me, 16) % 3):  # staggered by address
                try:
                    self.chain.draw_auditors(dispute_id)
                except ChainError as exc:  # someone else drew first
                    log.info("draw %d: %s", dispute_id, exc)

    def decide(self, audit, d) -> None:
        opened = self.opened_event(audit.dispute_id)
        receipt = receipt_of(opened["receipt"])
        # Auditors are drawn from every version's servers: judge with the disputed version's
        # weights and tolerance (our own span only when it is that version's, in float32).
        same = receipt.version_id == self.cfg.version_id
        tolerance = self.tolerance if same else self.chain.version(receipt.version_id)["tolerance_micros"] / 1e6
        spans = aud.SpanProvider(self.chain, self.store, receipt.version_id, self.cfg.cache_dir,
                                 self.own_span() if same else None)
        # All of it on the watcher thread, never the compute loop that serves sessions: fetching
        # (network, disk) and the recomputation (read-only use of the weights, its own buffers;
        # it competes for cores but no session waits on it).
        ready = aud.prepare(self.store, d, opened["evidenceCid"], receipt, spans)
        verdict = ready if isinstance(ready, aud.Verdict) else aud.judge(ready, spans, tolerance)
        audit.faulty, audit.error, audit.note = verdict.faulty, verdict.error, verdict.note
        audit.verdict, audit.fingerprint, audit.bad_block = verdict.verdict, verdict.fingerprint.hex(), verdict.bad_block
        audit.salt = os.urandom(32).hex()
        audit.stage = DECIDED
        self.save()  # the salt is on disk before the commitment can reach the chain
        emit("audited", operator=self.me, dispute_id=audit.dispute_id, faulty=verdict.faulty,
             verdict=verdict.verdict, block=verdict.bad_block, error=verdict.error, note=verdict.note)

    def settled_nonce(self, timeout_s: float = 60.0) -> None:
        """Wait until none of our transactions is in flight (e.g. one sent just before a crash),
        so the vote state read next is final and nothing is sent twice."""
        eth = self.chain.w3.eth
        wait_until(lambda: eth.get_transaction_count(self.me, "pending") <= eth.get_transaction_count(self.me, "latest"),
                   timeout_s, lambda: ChainError(f"a transaction from {self.me} is still pending after {timeout_s:.0f} s"))

    def commit(self, audit) -> None:
        self.settled_nonce()
        if self.vote_state(audit.dispute_id) < VOTE_COMMITTED:
            self.chain.commit_vote(audit.dispute_id, audit.verdict, bytes.fromhex(audit.fingerprint),
                                   bytes.fromhex(audit.salt))
        audit.stage = COMMITTED
        emit("committed", operator=self.me, dispute_id=audit.dispute_id)

    def reveal(self, audit) -> None:
        self.settled_nonce()
        if self.vote_state(audit.dispute_id) < VOTE_REVEALED:
            self.chain.reveal_vote(audit.dispute_id, audit.verdict, bytes.fromhex(audit.fingerprint),
                                   bytes.fromhex(audit.salt))
        audit.stage = REVEALED
        emit("revealed", operator=self.me, dispute_id=audit.dispute_id, faulty=audit.faulty, verdict=audit.verdict)

    def push_resolve(self, audit, d, now: int) -> None:
        """Rule the round once every vote is in (or the reveal deadline passed); settle once the
        appeal window (if any) closed. Done only when settled: an appeal may draw a new panel."""
        if not (can_rule(d, now) or can_settle(d, now)):
            return
        try:
            outcome = self.chain.resolve(audit.dispute_id)
        except ChainError as exc:  # someone else pushed it first
            log.info("resolve %d: %s", audit.dispute_id, exc)
            return
        if outcome == "appealable":
            emit("ruled", dispute_id=audit.dispute_id, ruling=self.chain.dispute(audit.dispute_id)["first_ruling"])
            return
        audit.stage, audit.outcome = DONE, outcome
        emit("resolved", dispute_id=audit.dispute_id, outcome=outcome, by=self.me)

    def reconcile(self, audit) -> None:
        """After a revert: align the local stage with what the chain says happened."""
        state = self.vote_state(audit.dispute_id)
        if state >= VOTE_REVEALED:
            audit.stage = max(audit.stage, REVEALED, key=_STAGES.index)
        elif state == VOTE_COMMITTED and audit.stage in (DRAWN, DECIDED):
            audit.stage = COMMITTED

    @staticmethod
    def reveal_open(d, now: int) -> bool:
        return (d["committed_count"] >= d["drawn_count"] or now > d["commit_deadline"]) and now <= d["reveal_deadline"]

    def vote_state(self, dispute_id: int) -> int:
        return int(self.chain.court.functions.voteOf(dispute_id, self.me).call()[1])

    def opened_event(self, dispute_id: int):
        logs = self.chain.court.events.DisputeOpened().get_logs(
            from_block=self.chain.deployment.deployed_at_block, argument_filters={"disputeId": dispute_id})
        if not logs:
            raise ChainError(f"no DisputeOpened event for dispute {dispute_id}")
        return logs[0]["args"]


_STAGES = [DRAWN, DECIDED, COMMITTED, REVEALED, DONE]


def receipt_of(struct) -> Receipt:
    """The Receipt from a DisputeOpened event's struct (a dict or a tuple in ABI order)."""
    names = ["server", "versionId", "firstBlock", "lastBlock", "term", "kind", "sessionId", "step",
             "inputHash", "outputHash", "blocksRoot", "issuedAt"]
    v = [struct[n] for n in names] if hasattr(struct, "keys") else list(struct)
    return Receipt(server=v[0], version_id=int(v[1]), first_block=int(v[2]), last_block=int(v[3]),
                   term=int(v[4]), kind=int(v[5]), session_id=bytes(v[6]), step=int(v[7]),
                   input_hash=bytes(v[8]), output_hash=bytes(v[9]), blocks_root=bytes(v[10]),
                   issued_at=int(v[11]))
