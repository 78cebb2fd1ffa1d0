"""Rebalancing with real processes: two daemons hold blocks [0, 3) of a 6-block model, a third
starts on [0, 3) too with rebalancing on; it sees blocks [3, 6) uncovered and moves there,
updating the registry; the client's chain membership then routes a full generation."""

from __future__ import annotations

import pytest

from trusthelp import tiny_stack, PARAMS, TOLERANCE, open_client, session_via


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = tiny_stack(tmp_path_factory, "rebalance", 4)
    try:
        yield s
    finally:
        s.stop()


def test_uneven_coverage_moves_the_span_and_updates_the_registry(stack):
    fixed = [stack.daemon(f"r{i}", i, "--blocks", "0:3") for i in (1, 2)]
    mover = stack.daemon("r3", 3, "--blocks", "0:3", "--rebalance-interval-s", "1")
    for d in fixed + [mover]:
        d.start()
    for d in fixed + [mover]:
        d.wait_event("ready", 150)
    moved = mover.wait_event("moving", 60)
    assert moved["blocks"] == [0, 3] and moved["to"] == [3, 6]
    mover.wait_event("registered", 60, where=lambda e: e["blocks"] == [3, 6])
    chain, _, model, members = open_client(stack, 6)
    assert (chain.server(mover.operator)["first_block"], chain.server(mover.operator)["last_block"]) == (3, 6)
    session, out = session_via(model)
    assert out.shape[1] == 6 + 5 and [(h.start, h.end) for h in session.route] == [(0, 3), (3, 6)]
    assert members.operator_of(session.route[1].address) == mover.operator
    model.close()


def test_deactivated_daemon_with_restake_stakes_again_and_reregisters(stack):
    d = stack.daemon("r4", 4, "--blocks", "0:6", "--restake")
    d.start()
    d.wait_event("ready", 150)
    operator = stack.chain(4)  # the operator's own key, used from outside the daemon
    operator.request_unstake(operator.stake_of(operator.address))  # stake under the minimum
    deactivated = d.wait_event("deactivated", 60)
    again = d.wait_event("registered", 60, where=lambda e: e["t"] >= deactivated["t"])
    assert again["blocks"] == [0, 6]
    assert operator.server(operator.address)["status"] == "active"
    assert operator.stake_of(operator.address) == operator.min_stake()
    assert d.alive()
