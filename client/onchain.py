"""The client on chain: a distributed model whose membership is ServerRegistry, whose receipts
are checked against the deployment's court domain, and whose sessions are spot-checked, with
findings turned into disputes.

    model, members = open_model(chain, version_id, store, ".cache/client")
    with model.inference_session(max_length=64) as session: ...
    for finding in act_on(SpotChecker(model, tolerance).check_session(session), members, challenger): ...
"""

from __future__ import annotations

import logging

from client.spotcheck import CheckedModel, CheckResult
from pollen.chain_membership import ChainMembership

log = logging.getLogger("pollen.client")


def tolerance_of(chain, version_id: int) -> float:
    return chain.version(version_id)["tolerance_micros"] / 1e6


def open_model(chain, version_id: int, store, cache_dir: str, allow=(), deny=(),
               compress: bool = False) -> tuple[CheckedModel, ChainMembership]:
    """Client parts fetched by CID from the version's manifest; servers from the registry."""
    from pollen.shards import fetch_client, manifest_cid_of

    cid, _ = manifest_cid_of(chain, version_id)
    files = fetch_client(store, cid, cache_dir)
    members = ChainMembership(chain, version_id, allow=allow, deny=deny)
    model = CheckedModel.from_pretrained(files.folder, membership=members, compress=compress,
                                         chain_id=chain.deployment.chain_id, court=chain.court.address)
    return model, members


def act_on(results: list[CheckResult], model, members: ChainMembership, challenger=None) -> list:
    """Route around every server found faulty; open a dispute for each when a challenger is given.
    Returns the dispute timelines opened (not yet followed)."""
    opened = []
    for r in results:
        if r.verdict != "faulty":
            continue
        members.deny(r.accused)
        model.swarm.fail(r.accused)
        model.swarm.views.pop(r.accused, None)
        log.warning("server %s caught: %s", r.accused, r.note)
        if challenger is not None:
            opened.append(challenger.open(r.evidence))
    return opened
