"""A deprecated version with a successor: a daemon started with --follow-successor moves to
the successor (fetching its shards by CID) and updates the registry; one without it stays and
announces the deprecation. Real anvil, two `pollen node` processes."""

from __future__ import annotations

import pytest

from trusthelp import tiny_stack, PARAMS, TOLERANCE


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = tiny_stack(tmp_path_factory, "versions", 5)
    try:
        yield s
    finally:
        s.stop()


def test_deprecated_version_moves_daemons_that_follow_successors(stack):
    from pollen.model.tiny import make_checkpoint
    from pollen.publish import publish_checkpoint, register_version
    from pollen.store import LocalStore

    follower = stack.daemon("v1", 1, "--follow-successor")
    stayer = stack.daemon("v2", 2)
    for d in (follower, stayer):
        d.start()
    for d in (follower, stayer):
        d.wait_event("ready", 150)
    owner = stack.chain(0)
    newer = publish_checkpoint(make_checkpoint("llama", stack.workdir / "tiny2", seed=6),
                               LocalStore(stack.store_path), tolerance=TOLERANCE)
    v2 = register_version(owner, owner.version(stack.version_id)["model_id"], newer, stack.version_id)
    owner.deprecate_version(stack.version_id, v2)
    moved = follower.wait_event("moving_version", 60)
    assert (moved["from_version"], moved["to_version"]) == (stack.version_id, v2)
    follower.wait_event("registered", 60, where=lambda e: e["t"] >= moved["t"])
    assert stayer.wait_event("version_deprecated", 60)["superseded_by"] == v2
    chain = stack.chain()
    assert chain.server(follower.operator)["version_id"] == v2
    assert chain.server(stayer.operator)["version_id"] == stack.version_id
    assert chain.active_servers(v2) == [follower.operator]
