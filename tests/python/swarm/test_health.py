"""`pollen health`: live probes of real server processes, registry mismatches, coverage gaps."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

from procs import ROOT

from client.health import Expected, Probe, coverage, mismatches, probe
from pollen.proto import swarm_pb2 as pb


def _dead_address() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"  # nothing listens once closed


def test_coverage_counts_only_healthy_servers():
    probes = [Probe("a", span=(0, 3), rtt_ms=1.0), Probe("b", span=(2, 6), rtt_ms=1.0),
              Probe("c", span=(0, 6), rtt_ms=1.0, problems=["signs as 0x1"]), Probe("d")]
    assert coverage(probes, 6) == [(0, 2, 1), (2, 3, 2), (3, 6, 1)]
    assert coverage(probes[:1], 6) == [(0, 3, 1), (3, 6, 0)]


def test_mismatches_name_each_disagreement():
    info = pb.InfoResponse(start=0, end=3, version_id="2", signer="0xAA", operator="0xBB", chain_id=5,
                           court="0xCC")
    assert mismatches(Expected("x", "0xbb", "0xaa", 0, 3, 2, 5, "0xcc"), info) == []
    problems = mismatches(Expected("x", "0xBB", "0xDD", 0, 4, 1, 31337, "0xCC"), info)
    assert len(problems) == 4
    assert any("registered [0, 4)" in p for p in problems) and any("version 2" in p for p in problems)
    assert any("signs as 0xAA" in p for p in problems) and any("chain 5" in p for p in problems)


def test_health_cli_probes_real_servers_and_reports_gaps(swarm_llama):
    routes, by = swarm_llama
    head = by["head"]
    live = probe(Expected(head.address), timeout_s=5)
    assert live.healthy and live.rtt_ms > 0 and live.span == (0, 2) and live.num_blocks == 6
    wrong = probe(Expected(head.address, signer="0x" + "00" * 20), timeout_s=5)
    assert not wrong.healthy and "signs as" in wrong.problems[0]

    dead = _dead_address()
    cmd = [sys.executable, "-m", "pollen.cli", "health", "--json", "--timeout-s", "2",
           "--peers", f"{head.address},{dead}"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1, out.stderr  # blocks [2, 6) have no live server
    report = json.loads(out.stdout)
    assert report["coverage"] == [[0, 2, 1], [2, 6, 0]]
    assert [s for s in report["servers"] if s["address"] == dead][0]["problems"][0].startswith("unreachable")

    cmd[-1] = ",".join(routes[2])
    out = subprocess.run(cmd[:4] + cmd[5:], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "every block is served" in out.stdout
