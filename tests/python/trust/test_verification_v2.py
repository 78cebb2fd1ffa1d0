"""Verification v2 (#9) on real processes: anvil and six `pollen node` daemons on a tiny random
Llama (6 blocks) split into two spans, every daemon tracing what it is sent (POLLEN_RPC_TRACE):

    a  [0, 3) fp32 honest                  h  [3, 6) fp32 honest
    b  [0, 3) bf16 honest                  c  [3, 6) skips block 3 on every step (trusthelp.FAULT)
    q  [0, 3) int8 arithmetic (`--fault quant:int8`: the daemon has no flag to *declare* int8)
    n  [0, 3) puts a NaN in block 1's output on every step

[3, 6) is served by exactly h and c, so a spot check of c has one other opinion and no third to
break the tie: a conflict. The tests run in file order on the one stack: the conflict goes to the
court (c slashed, h untouched); a replay and a real session look the same to the server that
receives them, and hunts send fresh prompts; n's NaN is caught, disputed without a replay and
slashed naming block 1; b and q are never judged faulty in this run that caught c and n.
"""

from __future__ import annotations

import json
import random
import threading
import time

import pytest
import torch

from client.disputes import Challenger
from client.onchain import TrustedClient, incident_results, tolerance_of
from client.spotcheck import SpotChecker
from client.verify import NonFiniteOutput
from pollen.store import LocalStore
from trusthelp import FAULT, TOLERANCE, open_client, session_via, tiny_stack

CHALLENGER = 7  # anvil dev account 7: not an operator
HUNTER = 8
SPANS = {"a": "0:3", "b": "0:3", "q": "0:3", "n": "0:3", "h": "3:6", "c": "3:6"}
FLAGS = {"a": ["--advertise-throughput", "50"],
         "b": ["--dtype", "bfloat16", "--advertise-throughput", "500"],
         "q": ["--fault", "quant:int8", "--advertise-throughput", "1000"],
         "n": ["--fault", "nan:1", "--fault-rate", "1.0", "--advertise-throughput", "100000"],
         "h": ["--advertise-throughput", "50"],
         "c": FAULT + ["--advertise-throughput", "100000"]}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = tiny_stack(tmp_path_factory, "verify2", 1)
    try:
        s.by_name = {}
        for key, (name, flags) in enumerate(FLAGS.items(), start=1):
            d = s.daemon(name, key, "--blocks", SPANS[name], *flags)
            d.env["POLLEN_RPC_TRACE"] = str(s.workdir / f"trace-{name}.jsonl")
            s.by_name[name] = d.start()
        for d in s.daemons:
            d.wait_event("ready", 150)
        chain = s.chain()
        s.staked_at_start = {name: chain.account_of(d.operator)["staked"] for name, d in s.by_name.items()}
        s.reports = []  # every spot-check / incident result of the run, for the last test
        yield s
    finally:
        s.stop()


def op(stack, *names: str) -> list[str]:
    return [stack.by_name[n].operator for n in names]


def endpoint(stack, name: str) -> str:
    """The host:port a daemon registered (what clients route to)."""
    from pollen.chain_membership import endpoint_address

    return endpoint_address(stack.chain().server(stack.by_name[name].operator)["endpoint"])


def trusted(stack, key: int, cache: str, *names: str, probability: float = 1.0) -> TrustedClient:
    return TrustedClient(stack.chain(key), stack.version_id, LocalStore(stack.store_path),
                         str(stack.workdir / cache), probability=probability, allow=op(stack, *names))


def settle(stack, dispute_ids, timeout: float = 150.0) -> dict[int, dict]:
    """Wait until every dispute is resolved (someone else pushes it: a TrustedClient's or a
    Challenger's follower). Dev chain only: when all that can still happen is a deadline passing
    (every live drawn auditor revealed, e.g. a slashed cheater drawn as an auditor exited before
    revealing), move anvil's clock past it instead of waiting for it in real time."""
    chain = stack.chain()
    daemon_of = {d.operator.lower(): d for d in stack.daemons}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        disputes = {i: chain.dispute(i) for i in dispute_ids}
        waiting = {i: d for i, d in disputes.items() if d["stage"] != "resolved"}
        if not waiting:
            return disputes
        now = chain.w3.eth.get_block("latest")["timestamp"]
        due = []
        for d in waiting.values():
            live = sum(1 for a in d["auditors"] if daemon_of[a.lower()].alive())
            revealed = d["faulty_votes"] + d["honest_votes"] + d["abstain_votes"]
            if d["stage"] == "voting" and d["drawn_count"] and revealed >= live:
                due.append(d["reveal_deadline"])
            elif d["stage"] == "appealable" and "appeal_deadline" in d:
                due.append(d["appeal_deadline"])
        if len(due) == len(waiting) and max(due) >= now:
            stack.advance_time(max(due) - now + 1)
        time.sleep(1.0)
    raise AssertionError(f"disputes {list(dispute_ids)} not resolved within {timeout:.0f} s")


def traced(stack, name: str) -> list[dict]:
    path = stack.workdir / f"trace-{name}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def sessions(lines: list[dict]) -> list[list[dict]]:
    """Inference steps grouped by session, in order of opening."""
    out: dict[str, list[dict]] = {}
    for line in lines:
        if line["rpc"] == "Inference":
            out.setdefault(line["session"], []).append(line)
    return list(out.values())


def pattern(steps: list[dict], dtype: bool = True) -> list[tuple]:
    """What a server can tell a session by: open parameters, step numbers, shapes, dtype."""
    return [(s["step"], json.dumps(s["open"], sort_keys=True), tuple(s["shape"]), s["dtype"] if dtype else "")
            for s in steps]


def test_two_server_conflict_goes_to_court_cheater_slashed_honest_untouched(stack):
    """Only h can replay c's hop and no third server covers [3, 6): the spot check reports a
    conflict and both signed receipts go to the court; c's dispute rules faulty naming block 3
    (slashed, deactivated), h's rules honest (stake and registration untouched)."""
    d = stack.by_name
    chain = stack.chain()
    covering = [s for s in map(chain.server, chain.active_servers(stack.version_id))
                if s["first_block"] < 6 and s["last_block"] > 3]
    assert sorted(s["operator"] for s in covering) == sorted(op(stack, "h", "c"))  # nobody else covers [3, 6)
    before = {name: chain.account_of(d[name].operator) for name in ("h", "c")}

    client = trusted(stack, CHALLENGER, "client-conflict", "a", "b", "h", "c")
    client.generate(torch.tensor([[5, 6, 7, 8, 9, 10]]), max_new_tokens=4)
    stack.reports += client.reports
    cheater, honest = endpoint(stack, "c"), endpoint(stack, "h")
    assert [h.address for h in client.last_session.route][-1] == cheater
    (conflict,) = [r for r in client.reports if r.verdict != "ok"]
    assert conflict.verdict == "conflict", conflict
    assert conflict.accused == [cheater, honest] and (conflict.step, conflict.block) == (0, 3)
    assert [ev.receipt.server for ev in conflict.evidence] == op(stack, "c", "h")

    outcomes = settle(stack, [t.dispute_id for t in client.timelines])
    timelines = client.wait_disputes(60)
    by_accused = {outcomes[t.dispute_id]["accused"]: (t, outcomes[t.dispute_id]) for t in timelines}
    assert set(by_accused) == set(op(stack, "c", "h"))
    (t_c, d_c), (t_h, d_h) = by_accused[d["c"].operator], by_accused[d["h"].operator]
    assert (t_c.outcome, t_c.named_block, d_c["block"]) == ("faulty", 3, 3)
    assert d_c["faulty_votes"] > d_c["honest_votes"]
    assert t_h.outcome == "honest" and d_h["faulty_votes"] < d_h["honest_votes"]

    assert d["c"].wait_event("slashed", 30)["amount_wei"] > 0
    assert d["c"].wait_event("exit", 60)["reason"].startswith("deactivated")
    after = chain.account_of(d["c"].operator)
    assert after["staked"] + after["unbonding"] < before["c"]["staked"]  # lost stake, not just left
    assert chain.server(d["c"].operator)["status"] != "active"
    assert chain.server(d["h"].operator)["status"] == "active" and d["h"].alive()
    assert chain.account_of(d["h"].operator)["staked"] == before["h"]["staked"]
    assert not [e for e in d["h"].events if e["event"] == "slashed"]
    client.close()


def test_a_replay_looks_like_real_traffic_to_the_server_and_hunts_send_fresh_prompts(stack):
    """Server side (the RPC trace): a spot-check replay arrives at b as an Inference session with
    the open parameters, steps, shapes and dtype of a real session on b; two hunt probes of b
    send different tokens, in the same pattern."""
    from client.hunt import probe

    _, _, model_a, _ = open_client(stack, HUNTER, allow=op(stack, "a", "h"))
    seen = len(traced(stack, "a"))
    real_a, _ = session_via(model_a, n_new=5, seed=3)
    log_a = next(g for g in real_a.hop_logs() if g.start == 0)
    (real_on_a,) = sessions(traced(stack, "a")[seen:])

    _, _, model_b, _ = open_client(stack, HUNTER, allow=op(stack, "b", "h"))
    seen = len(traced(stack, "b"))
    check = SpotChecker(model_b, TOLERANCE, 1.0).check_hop(log_a)  # replayed on b
    assert check.verdict == "ok" and check.checker == endpoint(stack, "b"), check
    (replay_on_b,) = sessions(traced(stack, "b")[seen:])
    seen = len(traced(stack, "b"))
    session_via(model_b, n_new=5, seed=4)  # a real session on b, other tokens
    (real_on_b,) = sessions(traced(stack, "b")[seen:])

    # a prompt chunk then one token per step, declaring one more token than it sends (the
    # last sampled token is never sent): the same on b for the replay as for real traffic
    assert [s["shape"][1] for s in real_on_b] == [6, 1, 1, 1, 1]
    assert real_on_b[0]["open"]["max_length"] == 6 + 5
    assert pattern(replay_on_b) == pattern(real_on_b)
    assert pattern(replay_on_b, dtype=False) == pattern(real_on_a, dtype=False)  # a is fp32, b bf16
    assert replay_on_b[0]["digest"] != real_on_b[0]["digest"]  # other tokens, same look

    # hunts: two rounds with fresh randomness, as `pollen hunt` without --seed
    _, _, model_h, _ = open_client(stack, HUNTER, allow=op(stack, "a", "b"))
    hunter = SpotChecker(model_h, TOLERANCE, 1.0)
    model_h.swarm.refresh()  # as each hunt round does
    probes = []
    for _ in range(2):
        seen = len(traced(stack, "b"))
        result = probe(model_h, hunter, endpoint(stack, "b"), random.Random())
        assert result.verdict == "ok", result
        (probed,) = sessions(traced(stack, "b")[seen:])
        probes.append(probed)
    first, second = probes
    assert first[0]["digest"] != second[0]["digest"]  # other tokens...
    for p in probes:  # ...sent like traffic: a prompt, single tokens, max_length one over
        assert p[0]["shape"][1] >= 4 and all(s["shape"][1] == 1 for s in p[1:])
        assert p[0]["open"]["max_length"] == sum(s["shape"][1] for s in p) + 1
    assert not [line for line in traced(stack, "b") if line["rpc"] != "Inference"]  # never a bare Forward
    for m in (model_a, model_b, model_h):
        m.close()


def test_nan_output_caught_disputed_without_replay_and_slashed_naming_the_block(stack):
    """n's NaN fails over to a (generation completes), its signed receipt becomes evidence naming
    block 1 with no replay and exactly one dispute, and the panel slashes n."""
    d = stack.by_name
    client = trusted(stack, CHALLENGER, "client-nan", "n", "a", "h")
    nan_server = endpoint(stack, "n")
    out = client.generate(torch.tensor([[11, 12, 13, 14, 15, 16]]), max_new_tokens=4)
    stack.reports += client.reports
    assert out.shape == (1, 10)
    session = client.last_session
    (incident,) = session.incidents
    assert isinstance(incident, NonFiniteOutput) and incident.address == nan_server
    assert incident.record.disputable and incident.record.receipt.server == d["n"].operator
    assert nan_server not in {h.address for h in session.route}  # failed over to a

    (finding,) = incident_results(session)
    finding.evidence[0].check()  # a consistent bundle: input chain, output hash, blocksRoot
    assert not bool(torch.isfinite(finding.evidence[0].output).all())
    flagged = [r for r in client.reports if r.verdict in ("faulty", "conflict")]
    assert len(flagged) == 1 and flagged[0].accused == [nan_server], client.reports  # one dispute, no replay
    assert (flagged[0].step, flagged[0].block) == (0, 1)
    assert [r for r in client.reports if r.address == nan_server] == flagged  # its hop was not replayed

    (timeline,) = client.timelines
    outcomes = settle(stack, [timeline.dispute_id])
    client.wait_disputes(60)
    dispute = outcomes[timeline.dispute_id]
    assert (timeline.outcome, timeline.named_block) == ("faulty", 1)
    assert dispute["accused"] == d["n"].operator and (dispute["block"], dispute["step"]) == (1, 0)
    assert dispute["faulty_votes"] > dispute["honest_votes"]
    assert d["n"].wait_event("slashed", 30)["amount_wei"] > 0
    assert d["n"].wait_event("exit", 60)["reason"].startswith("deactivated")
    client.close()


def test_int8_and_bf16_never_judged_faulty_in_the_run_that_caught_the_cheaters(stack):
    """One tolerance per version (trusthelp.TOLERANCE): b (bf16) and q (int8 weights) differ from
    fp32 visibly but within it. Spot-checked, and then disputed on purpose, both are judged
    honest; over the whole run only c and n were ever ruled faulty. q runs `--fault quant:int8`
    because `pollen node` cannot declare int8: its arithmetic is an honest int8 server's, its
    Info says quantization "none"."""
    d = stack.by_name
    chain = stack.chain(CHALLENGER)
    assert tolerance_of(chain, stack.version_id) == TOLERANCE  # one tolerance for the version
    challenger = Challenger(chain, LocalStore(stack.store_path))
    opened = []
    for name in ("q", "b"):
        client = trusted(stack, CHALLENGER, f"client-{name}", name, "a", "h")
        client.generate(torch.tensor([[21, 22, 23, 24, 25, 26]]), max_new_tokens=4)
        stack.reports += client.reports
        log = next(g for g in client.last_session.hop_logs() if g.start == 0)
        assert log.address == endpoint(stack, name)
        (check,) = [r for r in client.reports if r.address == log.address]
        # replayed on a (fp32): visibly lossy arithmetic (fp32 vs fp32 is ~1e-5), within tolerance
        assert check.verdict == "ok" and 1e-3 < check.max_error <= TOLERANCE, check
        assert not client.timelines
        # and put to the court anyway: the panel recomputes in fp32 and rules honest
        opened.append(challenger.open(log.evidence(len(log.inputs) - 1, 2)))
        client.close()
    followers = [threading.Thread(target=challenger.follow, args=(t, 150), daemon=True) for t in opened]
    for f in followers:
        f.start()
    outcomes = settle(stack, [t.dispute_id for t in opened])
    for f in followers:
        f.join(30)
    for t in opened:
        dispute = outcomes[t.dispute_id]
        assert t.outcome == "honest" and dispute["faulty_votes"] == 0 and dispute["honest_votes"] >= 2, dispute

    # over the whole run: the cheaters were caught and slashed, the lossy-but-honest never were
    members = {d[name].operator: name for name in d}
    flagged = {members.get(ev.receipt.server) for r in stack.reports for ev in r.evidence}
    assert {"c", "n"} <= flagged and not {"b", "q"} & flagged, flagged
    everything = [chain.dispute(e["args"]["disputeId"]) for e in chain.events("DisputeCourt", "DisputeOpened")]
    assert all(x["stage"] == "resolved" for x in everything)
    assert sorted(members[x["accused"]] for x in everything if x["outcome"] == "faulty") == ["c", "n"]
    mine = {t.dispute_id for t in opened}
    for name in ("b", "q"):
        assert not [e for e in d[name].events if e["event"] == "slashed"
                    or e["event"] == "accused" and e["dispute_id"] not in mine], name
        assert chain.account_of(d[name].operator)["staked"] == stack.staked_at_start[name]
        assert chain.server(d[name].operator)["status"] == "active" and d[name].alive()
    for name in ("c", "n"):
        assert [e for e in d[name].events if e["event"] == "slashed"], name
