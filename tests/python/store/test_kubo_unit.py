"""KuboStore against a scripted RPC (httpx.MockTransport): a node that lies is caught.

Unit tests of pollen.store.kubo only; the real node is exercised in test_kubo_node.py.
"""

from __future__ import annotations

import json

import httpx
import pytest

from pollen.store import (CidDisagreementError, ContentMismatchError, ContentNotFoundError,
                          NodeAnswerError, cid_of_bytes)
from pollen.store.kubo import KuboStore


def scripted(handler) -> KuboStore:
    store = KuboStore("http://node.invalid:5001", attempts=2)
    store.client = httpx.Client(base_url=store.url + "/api/v0", transport=httpx.MockTransport(handler))
    return store


def test_cat_with_wrong_bytes_is_rejected(tmp_path):
    store = scripted(lambda req: httpx.Response(200, content=b"not what you asked for"))
    wanted = cid_of_bytes(b"the real content")
    with pytest.raises(ContentMismatchError, match=f"does not match CID {wanted}"):
        store.fetch(wanted, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_add_answer_with_other_cid_is_rejected(tmp_path):
    other = cid_of_bytes(b"other")
    store = scripted(lambda req: httpx.Response(200, text=json.dumps({"Name": "f", "Hash": other})))
    (tmp_path / "f").write_bytes(b"content")
    with pytest.raises(CidDisagreementError, match=f"stored content as {other}, not .*non-default chunking"):
        store.add_file(tmp_path / "f")


def test_add_sends_cidv1_raw_leaves_parameters(tmp_path):
    seen = {}

    def handler(req: httpx.Request) -> httpx.Response:
        seen.update(req.url.params)
        seen["content-type"] = req.headers["content-type"]
        return httpx.Response(200, text=json.dumps({"Hash": cid_of_bytes(b"content")}) + "\n")
    (tmp_path / "f").write_bytes(b"content")
    assert scripted(handler).add_file(tmp_path / "f").cid == cid_of_bytes(b"content")
    assert (seen["cid-version"], seen["raw-leaves"], seen["cid-base"]) == ("1", "true", "base32")
    assert seen["content-type"].startswith("multipart/form-data")


def test_node_error_messages_are_surfaced():
    body = json.dumps({"Message": "Failed to cat file: request timed out", "Code": 0})
    store = scripted(lambda req: httpx.Response(500, text=body))
    cid = cid_of_bytes(b"x")
    with pytest.raises(ContentNotFoundError, match="request timed out"):
        store.cat(cid)
    store = scripted(lambda req: httpx.Response(500, text=json.dumps({"Message": "disk full"})))
    with pytest.raises(NodeAnswerError, match="IPFS node at http://node.invalid:5001: HTTP 500: disk full"):
        store.pin(cid)


def test_transient_transport_errors_are_retried(tmp_path):
    calls = []

    def handler(req: httpx.Request) -> httpx.Response:
        calls.append(req)
        if len(calls) == 1:
            raise httpx.ConnectError("connection reset")
        return httpx.Response(200, content=b"payload")
    assert scripted(handler).cat(cid_of_bytes(b"payload")) == b"payload"
    assert len(calls) == 2
