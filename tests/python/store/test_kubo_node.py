"""KuboStore against a REAL IPFS node (js-ipfs on Node 22, private and offline, own port)."""

from __future__ import annotations

import socket
import time

import pytest
from storehelp import C, GOLDEN, pattern, pid_alive

from pollen.store import (CidError, ContentNotFoundError, KuboStore, NodeProcessError,
                          StoreUnavailableError, cid_of_bytes)
from pollen.store.jsipfs import start_node


@pytest.mark.parametrize("size", [0, 1, C - 1, C, C + 1, 2 * C, 174 * C + 1])
def test_node_gives_golden_cids_and_round_trips(kubo, size):
    added = kubo.add_bytes(pattern(size))
    assert added.cid == GOLDEN[size]
    assert kubo.has(added.cid)
    assert kubo.cat(added.cid) == pattern(size)


def test_progress_on_upload_and_download(kubo, tmp_path):
    src = tmp_path / "big"
    src.write_bytes(pattern(5 * 1024 * 1024))
    up, down = [], []
    added = kubo.add_file(src, progress=lambda d, t: up.append((d, t)))
    kubo.fetch(added.cid, tmp_path / "back", progress=lambda d, t: down.append((d, t)), size=added.size)
    assert up[-1] == (added.size, added.size) and down[-1] == (added.size, added.size)
    assert len(down) > 1 and (tmp_path / "back").read_bytes() == src.read_bytes()


def test_describe_names_the_node(kubo, ipfs_node):
    info = kubo.describe()
    assert info["kind"] == "kubo" and info["url"] == ipfs_node.api_url
    assert info["agent"].startswith("js-ipfs/") and info["id"]


def test_unknown_cid_is_not_found_quickly(kubo):
    missing = cid_of_bytes(b"nobody ever added this")
    assert not kubo.has(missing)
    start = time.monotonic()
    with pytest.raises(ContentNotFoundError, match=f"CID {missing} not found in IPFS node"):
        kubo.cat(missing)
    assert time.monotonic() - start < 10


def test_malformed_cid_never_reaches_the_node(kubo):
    with pytest.raises(CidError, match="malformed CID"):
        kubo.cat("QmNotACid")
    assert kubo.stats.cids_read == []


def test_node_down_is_a_clear_error(tmp_path):
    node = start_node(tmp_path / "repo")
    store = KuboStore(node.api_url, attempts=2)
    cid = store.add_bytes(b"before the crash").cid
    node.stop()
    assert not pid_alive(node.pid)
    with pytest.raises(StoreUnavailableError, match=f"IPFS node at {node.api_url} is unavailable"):
        store.cat(cid)
    with pytest.raises(StoreUnavailableError):
        store.describe()


def test_busy_port_is_reported_and_the_node_stopped(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(NodeProcessError, match=f"port {port} is already in use"):
            start_node(tmp_path / "repo", port=port, timeout=30)
