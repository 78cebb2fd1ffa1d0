"""The trust loop on a real anvil with five `pollen node` processes (tiny random Llama):

d1, d2, d3 honest fp32; d4 honest bf16; d5 injects faults (100 % of outputs, still signed) and
advertises a huge throughput so the client routes through it. The tests run in file order and
share the stack: caught -> disputed -> audited -> slashed -> deactivated -> routed around;
a frivolous dispute (against the bf16 server) loses the bond, with an auditor killed between
commit and reveal that reveals after restart; a silent auditor is penalised and the dispute
still resolves; SIGTERM leaves and requests unstake; `pollen node status` reports.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from client.disputes import Challenger
from client.spotcheck import SpotChecker
from devstack.procs import ROOT, start_stack
from trusthelp import FAULT, PARAMS, TOLERANCE, open_client, session_via

HONEST = ["--advertise-throughput", "50"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    from pollen.model.tiny import make_checkpoint

    work = tmp_path_factory.mktemp("trust")
    ckpt = make_checkpoint("llama", work / "tiny", seed=1)
    s = start_stack(work, ckpt, PARAMS, TOLERANCE)
    try:
        flags = {"d1": HONEST, "d2": HONEST, "d3": HONEST, "d4": HONEST + ["--dtype", "bfloat16"],
                 "d5": FAULT + ["--advertise-throughput", "100000"]}
        threads = {"d3": 2}  # a different thread count must not look faulty either
        daemons = {name: s.daemon(name, i + 1, *f, threads=threads.get(name, 1))
                   for i, (name, f) in enumerate(flags.items())}
        for d in daemons.values():
            d.start()
        for d in daemons.values():
            d.wait_event("ready", 150)
        s.by_name = daemons
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def challenger_key():
    return 6  # anvil dev account 6: not an operator


def test_cheater_caught_disputed_slashed_and_routed_around(stack, challenger_key):
    from client.onchain import TrustedClient
    from pollen.store import LocalStore

    d = stack.by_name
    chain = stack.chain(challenger_key)
    client = TrustedClient(chain, stack.version_id, LocalStore(stack.store_path),
                           str(stack.workdir / "trusted"), probability=1.0)
    model, members = client.model, client.members
    cheater = d["d5"].operator
    before = chain.account_of(cheater)["staked"]
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    client.generate(ids, max_new_tokens=5)
    session = client.last_session
    assert [h.address for h in session.route] == [members.servers[cheater].endpoint]
    assert len(session.receipts) == 5  # every step's receipt verified as it arrived

    assert [r.verdict for r in client.reports] == ["faulty"]
    assert client.reports[0].accused == [members.servers[cheater].endpoint]
    assert (client.reports[0].step, client.reports[0].block) == (0, 3)  # bisected to the skipped block
    (timeline,) = client.wait_disputes(120)
    assert timeline.outcome == "faulty" and timeline.named_block == 3

    exit_event = d["d5"].wait_event("exit", 60)
    assert exit_event["reason"].startswith("deactivated")
    assert d["d5"].proc.wait(30) == 3  # EXIT_DEACTIVATED: a supervisor sees the slash
    assert chain.server(cheater)["status"] == "left"
    assert chain.account_of(cheater)["staked"] == 0 and chain.account_of(cheater)["unbonding"] == before // 2

    session2, _ = session_via(model, seed=1)  # generation goes on, around the cheater
    assert cheater not in {members.operator_of(h.address) for h in session2.route}
    assert SpotChecker(model, TOLERANCE, 1.0).check_session(session2)[0].verdict == "ok"

    dispute = chain.dispute(timeline.dispute_id)
    assert dispute["faulty_votes"] == 3 and (dispute["block"], dispute["step"]) == (3, 0)
    bond, slashed = PARAMS.bond, before // 2
    assert chain.credits_of(chain.address) == bond + slashed * PARAMS.finder_bps // 10_000
    balance = chain.w3.eth.get_balance(chain.address)
    chain.withdraw()
    assert chain.w3.eth.get_balance(chain.address) > balance + bond  # minus gas
    for auditor in dispute["auditors"]:
        key = next(i for i in range(1, 6) if d[f"d{i}"].operator == auditor)
        assert chain.credits_of(auditor) == slashed * PARAMS.auditor_bps // 10_000 // 3
        out = subprocess.run([sys.executable, "-m", "pollen.cli", "node", "withdraw", "--deployment",
                              str(stack.deployment_path), "--operator-key-file",
                              str(stack.workdir / "nodes" / f"d{key}" / "operator.key")],
                             cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and "withdrew 0.0333" in out.stdout, out.stderr[-2000:]
        assert chain.credits_of(auditor) == 0
    # one of the coherent auditors' daemons triggered the audit fee (the pool is empty here: no
    # one paid for service in this swarm, so it credits 0; tests/contracts/test_audit_fees.py)
    fees = chain.w3.eth.contract(address=stack.deployment.contracts["AuditFeePayer"],
                                 abi=__import__("pollen.artifacts", fromlist=["abi"]).abi("AuditFeePayer"))
    deadline = time.monotonic() + 30
    while not fees.functions.paid(timeline.dispute_id).call():
        assert time.monotonic() < deadline, "no auditor daemon paid the audit fee"
        time.sleep(0.5)
    client.close()


def _frivolous(stack, challenger_key, accused: str):
    """A session through `accused` only, and a dispute over its honest last receipt."""
    chain, store, model, members = open_client(stack, challenger_key, allow=[stack.by_name[accused].operator])
    session, _ = session_via(model, seed=2)
    (log,) = session.hop_logs()
    ev = log.evidence(len(log.inputs) - 1, 5)  # an honest receipt, naming its last block
    _, _, everyone, _ = open_client(stack, challenger_key)
    check = SpotChecker(everyone, TOLERANCE, 1.0).check_hop(log)  # replayed on another server
    assert check.verdict == "ok" and check.max_error <= TOLERANCE, check
    everyone.close()
    challenger = Challenger(chain, store)
    timeline = challenger.open(ev)
    model.close()
    return chain, challenger, timeline


def test_frivolous_dispute_loses_bond_and_killed_auditor_reveals_after_restart(stack, challenger_key):
    d = stack.by_name
    chain, challenger, timeline = _frivolous(stack, challenger_key, "d4")  # the bf16 server
    victim = d["d2"]
    victim.wait_event("committed", 60, where=lambda e: e["dispute_id"] == timeline.dispute_id)
    victim.kill9()  # between commit and reveal
    state = json.loads((stack.workdir / "nodes" / "d2" / "state.json").read_text())
    assert state["audits"][str(timeline.dispute_id)]["stage"] == "committed"
    restarted = time.time()
    victim.start()
    challenger.follow(timeline, timeout_s=150)
    victim.wait_event("revealed", 30, where=lambda e: e["t"] > restarted)
    assert timeline.outcome == "honest"
    dispute = chain.dispute(timeline.dispute_id)
    assert (dispute["honest_votes"], dispute["faulty_votes"]) == (3, 0)  # bf16 judged honest by fp32
    assert chain.credits_of(chain.address) == 0  # the bond is lost...
    assert chain.credits_of(d["d4"].operator) == PARAMS.bond * PARAMS.accused_share_bps // 10_000  # ...to d4


def test_silent_auditor_is_penalised_and_dispute_resolves(stack, challenger_key):
    d = stack.by_name
    silent = d["d4"]
    staked = stack.chain().account_of(silent.operator)["staked"]
    silent.signal(signal.SIGSTOP)  # drawn, but never answers
    try:
        chain, challenger, timeline = _frivolous(stack, challenger_key, "d1")
        for name in ("d2", "d3"):
            d[name].wait_event("committed", 60, where=lambda e: e["dispute_id"] == timeline.dispute_id)
        stack.advance_time(PARAMS.commit_period + 1)  # dev chain: move past the commit deadline
        for name in ("d2", "d3"):
            d[name].wait_event("revealed", 60, where=lambda e: e["dispute_id"] == timeline.dispute_id)
        stack.advance_time(PARAMS.reveal_period + 1)
        challenger.follow(timeline, timeout_s=60)
        assert timeline.outcome == "honest"
        assert silent.operator in chain.dispute(timeline.dispute_id)["auditors"]
        assert stack.chain().account_of(silent.operator)["staked"] == staked - PARAMS.no_reveal_penalty
    finally:
        silent.signal(signal.SIGCONT)
    # under the minimum stake now: its daemon wakes up, sees the deactivation and drops out
    assert silent.wait_event("exit", 60)["reason"].startswith("deactivated")


def test_node_status_then_sigterm_leaves_and_unstakes(stack):
    d2 = stack.by_name["d2"]
    out = subprocess.run([sys.executable, "-m", "pollen.cli", "node", "status", "--deployment",
                          str(stack.deployment_path), "--state-dir", str(stack.workdir / "nodes" / "d2"),
                          "--json"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["operator"] == d2.operator and info["server_status"] == "active"
    assert info["staked"] == 1.0 and info["withdrawable_credits"] > 0
    assert len(info["audits"]) >= 2 and all(a["stage"] == "done" for a in info["audits"])
    text = subprocess.run([sys.executable, "-m", "pollen.cli", "node", "status", "--deployment",
                           str(stack.deployment_path), "--state-dir", str(stack.workdir / "nodes" / "d2")],
                          cwd=ROOT, capture_output=True, text=True, timeout=60).stdout
    assert f"operator          {d2.operator}" in text and "receipts signed" in text
    assert text.count("audit #") == len(info["audits"])
    staked = stack.chain().account_of(d2.operator)["staked"]
    d2.signal(signal.SIGTERM)
    assert d2.wait_event("exit", 30)["reason"] == "signal"
    chain = stack.chain()
    assert chain.server(d2.operator)["status"] == "left"
    assert chain.account_of(d2.operator)["unbonding"] == staked
