"""`pollen health --deployment`: the registry's servers of a version, probed; dead ones are gaps."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.anvil


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_registered_but_unreachable_servers_are_reported_as_gaps(roles, signers, deployment, tmp_path):
    owner = roles["owner"]
    version = owner.publish_version(owner.create_model("health"), "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
                                    8, 0, 10_000)
    ports = []
    for i, (name, span) in enumerate([("op1", (0, 4)), ("op2", (4, 8))]):
        roles[name].stake(2 * 10**18)
        ports.append(_dead_port())
        roles[name].register(signers[i].address, f"grpc://127.0.0.1:{ports[-1]}", version, *span, 50)
    path = tmp_path / "deployment.json"
    deployment.save(path)
    out = subprocess.run([sys.executable, "-m", "pollen.cli", "health", "--deployment", str(path),
                          "--version-id", str(version), "--timeout-s", "1", "--json"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stderr
    report = json.loads(out.stdout)
    assert report["num_blocks"] == 8 and report["coverage"] == [[0, 8, 0]]
    by_address = {s["address"]: s for s in report["servers"]}
    assert set(by_address) == {f"127.0.0.1:{p}" for p in ports}
    assert all(s["problems"][0].startswith("unreachable") for s in by_address.values())
    assert {s["operator"].lower() for s in by_address.values()} == {roles["op1"].address.lower(),
                                                                    roles["op2"].address.lower()}
