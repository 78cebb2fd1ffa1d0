"""The embedded store: round trips, verification on every read, progress, bad input."""

from __future__ import annotations

import pytest
from storehelp import pattern

from pollen.store import (CidError, ContentMismatchError, ContentNotFoundError, LocalStore,
                          StorePathError, cid_of_bytes, open_store)
from pollen.store.kubo import KuboStore

SIZE = 700_000  # three chunks


def test_round_trip_and_counters(local, tmp_path):
    added = local.add_bytes(pattern(SIZE))
    dest = local.fetch(added.cid, tmp_path / "out" / "copy")
    assert dest.read_bytes() == pattern(SIZE)
    assert local.has(added.cid) and not local.has(cid_of_bytes(b"other"))
    assert (local.stats.bytes_written, local.stats.bytes_read) == (SIZE, SIZE)
    assert local.stats.cids_read == [added.cid]


def test_adding_twice_keeps_one_blob(local):
    first, second = local.add_bytes(b"same"), local.add_bytes(b"same")
    assert first == second
    assert len(list(local.blobs.iterdir())) == 1


def test_progress_is_monotonic_and_ends_at_total(local, tmp_path):
    seen = []
    src = tmp_path / "src"
    src.write_bytes(pattern(3 * 1024 * 1024 + 5))
    added = local.add_file(src, progress=lambda done, total: seen.append((done, total)))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert seen[-1] == (added.size, added.size) and len(seen) > 2


def test_corrupted_blob_is_an_error_and_nothing_is_written(local, tmp_path):
    added = local.add_bytes(pattern(SIZE))
    blob = local.path_of(added.cid)
    blob.write_bytes(b"X" + blob.read_bytes()[1:])
    with pytest.raises(ContentMismatchError, match=f"does not match CID {added.cid}"):
        local.fetch(added.cid, tmp_path / "dest")
    assert list(tmp_path.glob("dest*")) == [] and list(tmp_path.glob(".dest*")) == []


def test_missing_content_and_malformed_cid(local, tmp_path):
    with pytest.raises(ContentNotFoundError, match="not found in local store"):
        local.fetch(cid_of_bytes(b"never added"), tmp_path / "x")
    with pytest.raises(CidError, match="malformed CID 'not-a-cid'"):
        local.cat("not-a-cid")
    with pytest.raises(StorePathError, match="cannot add: not a file"):
        local.add_file(tmp_path / "missing")
    with pytest.raises(ContentNotFoundError):
        local.pin(cid_of_bytes(b"never added"))


def test_open_store_picks_backend(tmp_path):
    assert isinstance(open_store(tmp_path / "s"), LocalStore)
    assert isinstance(open_store("http://127.0.0.1:5001"), KuboStore)
