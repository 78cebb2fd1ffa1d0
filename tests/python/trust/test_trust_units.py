"""Unit tests of single modules: evidence bundles, daemon config, daemon state file."""

from __future__ import annotations

import json
import os

import pytest
import torch

from node.daemon_config import DaemonConfig
from node.errors import ConfigError
from node.state import COMMITTED, StateStore
from pollen import evidence as ev
from pollen import judgment
from pollen.receipts import Receipt, hash_tensor
from pollen.store import LocalStore

KEY = "0x" + "11" * 32


def bundle(steps: int = 3) -> ev.Evidence:
    g = torch.Generator().manual_seed(0)
    inputs = [torch.randn(1, 2 if i == 0 else 1, 8, generator=g) for i in range(steps)]
    output = torch.randn(inputs[-1].shape, generator=g)
    sketches = torch.randn(4, 1, 1, judgment.SKETCH_DIM, generator=g)
    r = Receipt(server="0x" + "ab" * 20, version_id=1, first_block=0, last_block=4, term=0, kind=0,
                session_id=b"\1" * 32, step=steps - 1, input_hash=ev.input_chain(inputs),
                output_hash=hash_tensor(output), blocks_root=judgment.blocks_root(0, sketches),
                issued_at=1_700_000_000)
    return ev.Evidence(r, b"\2" * 65, inputs, output, sketches, 2)


def test_evidence_roundtrip_through_the_store(tmp_path):
    store = LocalStore(tmp_path)
    original = bundle()
    cid = ev.put(store, original)
    back = ev.get(store, cid)
    assert back.receipt == original.receipt and back.signature == original.signature and back.block == 2
    assert all(torch.equal(a, b) for a, b in zip(back.inputs + [back.output, back.sketches],
                                                 original.inputs + [original.output, original.sketches]))
    assert ev.put(store, original) == cid  # content addressed


@pytest.mark.parametrize("tamper, message", [
    (lambda b: b.inputs[0].add_(1e-3), "inputHash"),
    (lambda b: b.output.mul_(2), "outputHash"),
    (lambda b: b.sketches.mul_(2), "blocksRoot"),
    (lambda b: b.inputs.pop(), "inputs"),
    (lambda b: setattr(b, "block", 4), "named block"),
])
def test_evidence_that_does_not_match_its_receipt_is_refused(tamper, message):
    b = bundle()
    tamper(b)
    with pytest.raises(ev.EvidenceError, match=message):
        b.check()


def test_evidence_bytes_from_a_peer_are_checked():
    data = ev.to_bytes(bundle())
    with pytest.raises(ev.EvidenceError, match="too short"):
        ev.from_bytes(b"abc")
    with pytest.raises(ev.EvidenceError, match="schema"):
        ev.from_bytes(data.replace(b"pollen.evidence/2", b"pollen.evidence/9"))
    with pytest.raises(ev.EvidenceError, match="header length"):
        ev.from_bytes((10**9).to_bytes(8, "little") + data[8:])


def test_relative_error_is_per_row_max():
    ref = torch.ones(2, 3, 4)
    claimed = ref.clone()
    claimed[1] *= 1.5
    assert ev.relative_error(claimed, ref) == pytest.approx(0.5)
    assert ev.relative_error(ref, ref) == 0.0


def test_config_precedence_file_env_flags(tmp_path, monkeypatch):
    monkeypatch.setenv("POLLEN_OPERATOR_KEY", KEY)
    f = tmp_path / "node.toml"
    f.write_text('version_id = 3\nport = 4000\ndtype = "bfloat16"\nrestake = true\n')
    cfg = DaemonConfig.load(str(f), env={"POLLEN_NODE_PORT": "5000", "POLLEN_NODE_RESTAKE": "false"}, port=6000)
    assert (cfg.version_id, cfg.port, cfg.dtype, cfg.restake) == (3, 6000, "bfloat16", False)
    assert (cfg.max_length, cfg.cache_mb) == (2048, 512.0)  # the server's defaults unless set
    assert cfg.operator_key() == KEY
    assert KEY[2:] not in json.dumps(cfg.redacted())


@pytest.mark.parametrize("settings, message", [
    ({"version_id": 0}, "version_id"),
    ({"version_id": 1, "blocks": "5:2"}, "invalid span"),
    ({"version_id": 1, "blocks": "x"}, "START:END"),
    ({"version_id": 1, "fault_rate": 2.0}, "fault_rate"),
    ({"version_id": 1, "port": "eighty"}, "port"),
    ({"version_id": 1, "colour": "red"}, "unknown setting"),
    ({"version_id": 1, "max_length": 0}, "max_length"),
    ({"version_id": 1, "cache_mb": -1}, "cache_mb"),
])
def test_bad_config_is_named(settings, message, monkeypatch):
    monkeypatch.setenv("POLLEN_OPERATOR_KEY", KEY)
    with pytest.raises(ConfigError, match=message):
        DaemonConfig.load(None, env={}, **settings)


def test_missing_or_bad_keys_are_named(tmp_path, monkeypatch):
    monkeypatch.delenv("POLLEN_OPERATOR_KEY", raising=False)
    with pytest.raises(ConfigError, match="no operator key"):
        DaemonConfig.load(None, env={}, version_id=1)
    bad = tmp_path / "k"
    bad.write_text("not a key")
    cfg = DaemonConfig.load(None, env={}, version_id=1, operator_key_file=str(bad))
    with pytest.raises(ConfigError, match="32-byte hex"):
        cfg.operator_key()


def test_state_survives_reload_and_corruption_is_named(tmp_path):
    store = StateStore(tmp_path)
    state = store.load()
    audit = state.audit(7)
    audit.stage, audit.salt, audit.faulty = COMMITTED, os.urandom(32).hex(), True
    state.last_block = 42
    store.save(state)
    back = StateStore(tmp_path).load()
    assert back.last_block == 42 and back.audits["7"] == audit
    assert not list(tmp_path.glob(".*.tmp"))  # atomic replace leaves no temp file
    (tmp_path / "state.json").write_text("{oops")
    with pytest.raises(ConfigError, match="corrupt"):
        StateStore(tmp_path).load()


def test_spot_check_bisection_names_the_first_differing_step_and_block():
    """SpotChecker.first_difference over plain data: the first (step, block) out of tolerance."""
    from client.spotcheck import HopLog, Replay, SpotChecker

    g = torch.Generator().manual_seed(5)
    sk = [torch.randn(4, 1, 1 if i else 3, judgment.SKETCH_DIM, generator=g) for i in range(3)]
    out = [torch.randn(1, s.shape[2], 16, generator=g) for s in sk]
    theirs = Replay([], [s.clone() for s in sk], [o.clone() for o in out])
    mine = HopLog("a:1", 10, 14, [], out, [s.clone() for s in sk], [])
    checker = SpotChecker.__new__(SpotChecker)
    checker.tolerance = 0.1
    assert checker.first_difference(mine, theirs) is None
    mine.sketches[1][2] *= 1.5  # step 1, local block 2 = global block 12 (and everything after)
    mine.sketches[1][3] *= 1.5
    mine.sketches[2][0] *= 2.0
    assert checker.first_difference(mine, theirs) == (1, 12)
    mine.sketches[1][2] = float("nan")  # NaN is never "within tolerance"
    assert checker.first_difference(mine, theirs) == (1, 12)
