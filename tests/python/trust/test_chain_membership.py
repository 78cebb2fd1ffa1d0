"""ChainMembership against a real anvil: servers registered directly through pollen.chain
(no daemons): inactive/left servers are skipped, endpoint changes are picked up from events,
allow/deny lists filter, bad endpoints are skipped with a named error."""

from __future__ import annotations

import pytest
from eth_account import Account

from devstack.anvil import dev_keys, start_anvil
from pollen.chain import Chain
from pollen.chain_membership import ChainMembership, endpoint_address
from pollen.deploy import Parameters, deploy_all
from pollen.membership import MembershipError


@pytest.fixture(scope="module")
def chains():
    with start_anvil() as node:
        deployment = deploy_all(node.rpc, params=Parameters(), log=lambda *_: None)
        keys = dev_keys(5)
        owner = Chain.connect(deployment, private_key=keys[0])
        model = owner.create_model("m")
        version = owner.publish_version(model, "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", 4)
        ops = [Chain.connect(deployment, private_key=k) for k in keys[1:]]
        for i, c in enumerate(ops):
            c.stake(c.min_stake())
            c.register(Account.create().address, f"grpc://127.0.0.1:{7000 + i}", version, 0, 4, 10)
        yield owner, ops, version


def addresses(m):
    return sorted(p.address for p in m.peers())


def test_membership_follows_the_registry(chains):
    owner, ops, version = chains
    m = ChainMembership(owner, version, min_refresh_s=0)
    assert addresses(m) == [f"127.0.0.1:{7000 + i}" for i in range(4)]
    assert {p.signer for p in m.peers()} == {owner.server(c.address)["signer"] for c in ops}
    ops[0].leave()
    ops[1].update_server(ops[1].server(ops[1].address)["signer"], "grpc://127.0.0.1:7777", version, 0, 4, 10)
    ops[2].request_unstake(ops[2].min_stake())  # under the minimum -> deactivated
    assert addresses(m) == ["127.0.0.1:7003", "127.0.0.1:7777"]
    assert m.operator_of("127.0.0.1:7777") == ops[1].address


def test_allow_and_deny_lists(chains):
    owner, ops, version = chains
    allow = ChainMembership(owner, version, allow=[ops[3].address.lower()], min_refresh_s=0)
    assert addresses(allow) == ["127.0.0.1:7003"]
    deny = ChainMembership(owner, version, deny=["127.0.0.1:7003"], min_refresh_s=0)
    assert addresses(deny) == ["127.0.0.1:7777"]
    deny.deny(ops[1].address)
    assert addresses(deny) == []


@pytest.mark.parametrize("bad", ["http://x:1", "grpc://nohost", "grpc://h:99999", "grpc://h:1/path"])
def test_bad_registered_endpoints_are_named(bad):
    with pytest.raises(MembershipError, match="not grpc://host:port"):
        endpoint_address(bad)


def test_publish_cli_registers_a_version(chains, tmp_path):
    import subprocess
    import sys

    from devstack.procs import ROOT
    from pollen.model.tiny import make_checkpoint
    from pollen.shards import manifest_cid_of

    owner, _, _ = chains
    deployment = tmp_path / "d.json"
    owner.deployment.save(deployment)
    key = tmp_path / "k"
    key.write_text(dev_keys(1)[0])
    ckpt = make_checkpoint("llama", tmp_path / "tiny", seed=9)
    args = [sys.executable, "-m", "pollen.cli", "publish", str(ckpt), "--deployment", str(deployment),
            "--key-file", str(key), "--store", str(tmp_path / "store"), "--tolerance", "0.2"]
    first = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr[-2000:]
    version = int(first.stdout.split("version ")[-1])
    cid, blocks = manifest_cid_of(owner, version)
    assert f"manifest {cid}" in first.stdout and owner.version(version)["tolerance_micros"] == 200_000
    again = subprocess.run(args + ["--model-id", str(owner.version(version)["model_id"])], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and int(again.stdout.split("version ")[-1]) == version  # idempotent
