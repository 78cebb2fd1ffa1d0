"""The client on chain: a distributed model whose membership is ServerRegistry, whose receipts
are checked against the deployment's court domain, and whose sessions are spot-checked, with
findings turned into disputes.

    model, members = open_model(chain, version_id, store, ".cache/client")
    with model.inference_session(max_length=64) as session: ...
    for finding in act_on(SpotChecker(model, tolerance).check_session(session), members, challenger): ...
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from client.spotcheck import CheckedModel, CheckResult
from pollen.chain_membership import ChainMembership

log = logging.getLogger("pollen.client")


def tolerance_of(chain, version_id: int) -> float:
    return chain.version(version_id)["tolerance_micros"] / 1e6


def open_model(chain, version_id: int, store, cache_dir: str, allow=(), deny=(),
               compress: bool = False, pay: bool = False, lane_wei: int = 0) -> tuple[CheckedModel, ChainMembership]:
    """Client parts fetched by CID from the version's manifest; servers from the registry.
    pay: pay every verified step from this account's PaymentEscrow deposit, at the prices the
    servers declared on chain (see client/payer.py); lane_wei: fund each server's lane to this
    before the first session with it (else the lanes must already hold enough)."""
    from pollen.shards import fetch_client, manifest_cid_of

    cid, _ = manifest_cid_of(chain, version_id)
    files = fetch_client(store, cid, cache_dir)
    members = ChainMembership(chain, version_id, allow=allow, deny=deny)
    membership, chain_id, court, terms, version_id = chain_options(chain, version_id, members)
    model = CheckedModel.from_pretrained(files.folder, membership=membership, compress=compress,
                                         chain_id=chain_id, court=court, terms=terms, version_id=version_id)
    if pay:
        model.use_payer(payer_for(chain, Path(cache_dir) / "payer.json", lane_wei))
    return model, members


def chain_options(chain, version_id: int, membership=None, terms=None) -> tuple:
    """(membership, chain_id, court, terms, version_id) for a model served on chain: the registry's
    active servers of the version (unless a membership is given), its court's receipt domain and
    the operators' registered terms (client.verify.TermBook)."""
    from client.verify import TermBook

    membership = membership if membership is not None else ChainMembership(chain, version_id)
    terms = terms if terms is not None else TermBook(chain)
    return membership, chain.deployment.chain_id, chain.court.address, terms, version_id


def payer_for(chain, state_file=None, lane_wei: int = 0):
    """A Payer over the deployment's escrow, signing with the chain account's key; its tabs kept
    in `state_file` across runs when given; with lane_wei, each server's lane is funded to it
    before the first session with that server (client.payer.LaneFunder)."""
    from client.errors import ClientError
    from client.payer import Payer
    from pollen.escrow import Escrow

    address = chain.deployment.contracts.get("PaymentEscrow")
    if not address:
        raise ClientError(f"deployment {chain.deployment.network} has no PaymentEscrow: nothing to pay with")
    escrow = Escrow(chain, address)
    from client.payer import LaneFunder

    fund = LaneFunder(escrow, chain.address, lane_wei, log=log.info) if lane_wei else None
    return Payer(chain.signing_key, escrow.domain(), price_of=lambda operator: escrow.terms(operator)[0],
                 state_file=state_file, fund=fund)


def act_on(results: list[CheckResult], model, members: ChainMembership, challenger=None) -> list:
    """Route around every server found faulty; open a dispute for each when a challenger is given.
    Returns the dispute timelines opened (not yet followed)."""
    opened = []
    for r in results:
        if r.verdict not in ("faulty", "conflict"):
            continue
        for accused, evidence in zip(r.accused, r.evidence):
            if r.verdict == "faulty":  # a conflict's honest side must stay usable
                members.deny(accused)
                model.swarm.fail(accused)
                model.swarm.views.pop(accused, None)
            log.warning("server %s %s: %s", accused, "caught" if r.verdict == "faulty" else "in conflict", r.note)
            if challenger is not None:
                opened.append(challenger.open(evidence))
    return opened


def incident_results(session) -> list[CheckResult]:
    """Signed non-finite outputs seen during a session, as findings to dispute (no replay needed:
    the claim itself is NaN/inf). The named block is the first whose sketch is not finite."""
    from client.spotcheck import HopLog

    out = []
    for inc in session.incidents:
        r = inc.record.receipt
        finite = [bool(inc.sketches[i].isfinite().all()) for i in range(inc.sketches.shape[0])]
        block = r.first_block + (finite.index(False) if False in finite else len(finite) - 1)
        log_ = HopLog(inc.address, r.first_block, r.last_block, list(inc.inputs), [None] * r.step + [inc.output],
                      [None] * r.step + [inc.sketches], [None] * r.step + [inc.record],
                      prompts=getattr(inc, "prompts", None))
        out.append(CheckResult(inc.address, (r.first_block, r.last_block), None, float("inf"), "faulty",
                               [inc.address], [log_.evidence(r.step, block)], block, r.step,
                               note=f"non-finite output at step {r.step}"))
    return out


class TrustedClient:
    """`generate()` through the on-chain swarm, spot-checking each session with probability p;
    a server caught is routed around at once and disputed, the dispute followed in the background.

        client = TrustedClient(chain, version_id, store, ".cache/client", probability=0.1)
        ids = client.generate(input_ids, max_new_tokens=32)
        client.reports, client.timelines   # spot-check results, disputes opened
    """

    def __init__(self, chain, version_id: int, store, cache_dir: str, probability: float = 0.1,
                 allow=(), deny=(), dispute: bool = True, rng=None, on_progress=None, pay: bool = False):
        from client.disputes import Challenger
        from client.spotcheck import SpotChecker

        self.model, self.members = open_model(chain, version_id, store, cache_dir, allow, deny, pay=pay)
        self.checker = SpotChecker(self.model, tolerance_of(chain, version_id), probability, rng)
        self.challenger = Challenger(chain, store, on_progress) if dispute else None
        self.reports: list[CheckResult] = []
        self.timelines: list = []
        self.last_session = None
        self._threads: list[threading.Thread] = []

    def generate(self, input_ids, max_new_tokens: int = 20, **kwargs):
        session = self.model.inference_session(input_ids.shape[1] + max_new_tokens, input_ids.shape[0])
        try:
            out = self.model.generate(input_ids, max_new_tokens=max_new_tokens, session=session, **kwargs)
        finally:
            session.close()
        self.last_session = session
        # a server that signed NaN/inf is routed around (and disputed) before a spot check
        # could send it a replay
        self._act(incident_results(session))
        self._act(self.checker.check_session(session))
        return out

    def _act(self, results: list[CheckResult]) -> None:
        self.reports += results
        for timeline in act_on(results, self.model, self.members, self.challenger):
            self.timelines.append(timeline)
            thread = threading.Thread(target=self._follow, args=(timeline,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _follow(self, timeline) -> None:
        try:
            self.challenger.follow(timeline)
        except Exception as exc:  # noqa: BLE001 - reported on the timeline, the client goes on
            timeline.outcome = f"not followed: {exc}"
            log.error("dispute %d: %s", timeline.dispute_id, exc)

    def wait_disputes(self, timeout_s: float = 600.0) -> list:
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return self.timelines

    def close(self) -> None:
        self.model.close()
