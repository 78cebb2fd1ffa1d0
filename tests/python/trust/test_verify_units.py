"""client.verify alone: every receipt the client accepts is one the court would accept (checked
against the registry term it names, never the server's own report), and NaN is a failure whose
signed receipt is kept for a dispute. The registry is a dict here (unit test of one module)."""

from __future__ import annotations

import time

import pytest
import torch
from eth_account import Account

from client.errors import ReceiptRejected, ServerFailure
from client.verify import Expected, NonFiniteOutput, ReceiptVerifier, check_output
from pollen import judgment
from pollen.proto import swarm_pb2 as pb
from pollen.receipts import KIND_INFERENCE, Receipt, ReceiptDomain, hash_tensor, sign_receipt

DOMAIN = ReceiptDomain(31337, "0x" + "22" * 20)
SIGNER = Account.from_key("0x" + "ab" * 32)
OPERATOR = "0x" + "11" * 20
NOW = int(time.time())
TERM = {"signer": SIGNER.address, "first_block": 0, "last_block": 4, "version_id": 1,
        "started_at": NOW - 100, "ended_at": 0}


class Terms:
    def __init__(self, terms):
        self.terms = terms

    def get(self, operator, index):
        return self.terms.get((operator.lower(), index))


def served(**over):
    y = torch.randn(1, 2, 16)
    sketches = torch.stack([judgment.sketch(y)] * 4)
    fields = dict(server=OPERATOR, version_id=1, first_block=0, last_block=4, term=0, kind=KIND_INFERENCE,
                  session_id=b"\1" * 32, step=0, input_hash=b"\2" * 32, output_hash=hash_tensor(y),
                  blocks_root=judgment.blocks_root(0, sketches), issued_at=int(time.time()))
    fields.update(over)
    r = Receipt(**fields)
    msg = pb.Receipt(server=r.server, version_id=str(r.version_id), first_block=r.first_block,
                     last_block=r.last_block, term=r.term, kind=r.kind, session_id=r.session_id, step=r.step,
                     input_hash=r.input_hash, output_hash=r.output_hash, blocks_root=r.blocks_root,
                     issued_at=r.issued_at, signature=sign_receipt(r, DOMAIN, SIGNER.key))
    return msg, y, sketches


def expected(**over):
    e = dict(signer="0x" + "99" * 20, operator=OPERATOR, session_id=b"\1" * 32, step=0, first=0, last=4,
             input_hash=b"\2" * 32, kind=KIND_INFERENCE)
    e.update(over)
    return Expected(**e)


def verifier(terms=None):
    return ReceiptVerifier(DOMAIN, terms=Terms(terms if terms is not None else {(OPERATOR, 0): TERM}), version_id=1)


def test_a_receipt_the_court_accepts_is_accepted_and_marked_disputable():
    msg, y, sk = served()
    record = verifier().check("s:1", msg, expected(), y, sk)  # Info's signer (0x99..) is ignored
    assert record.disputable and record.receipt.blocks_root == judgment.blocks_root(0, sk)


@pytest.mark.parametrize("over, terms, problem", [
    ({"server": "0x" + "33" * 20}, None, "registered to"),  # reports another operator
    ({"version_id": 2}, None, "version 2"),  # another version
    ({"first_block": 0, "last_block": 4}, {(OPERATOR, 0): {**TERM, "last_block": 3}}, "outside term"),  # span
    ({"term": 1}, None, "does not have"),  # a term it never had
    ({}, {(OPERATOR, 0): {**TERM, "signer": "0x" + "44" * 20}}, "signer is"),  # key not registered
    ({}, {(OPERATOR, 0): {**TERM, "ended_at": NOW - 10}}, "outside term"),  # signed after leaving
])
def test_receipts_the_court_would_reject_are_refused_before_use(over, terms, problem):
    msg, y, sk = served(**over)
    exp = expected(operator=OPERATOR)
    with pytest.raises(ReceiptRejected, match=problem):
        verifier(terms).check("s:1", msg, exp, y, sk)


def test_sketches_must_be_what_blocks_root_commits_to():
    msg, y, sk = served()
    with pytest.raises(ReceiptRejected, match="blocksRoot"):
        verifier().check("s:1", msg, expected(), y, sk * 1.01)


def test_nan_output_is_a_failure_that_keeps_its_signed_receipt():
    msg, y, sk = served()
    record = verifier().check("s:1", msg, expected(), y, sk)
    bad = y.clone()
    bad[0, 1, 3] = float("nan")
    with pytest.raises(NonFiniteOutput) as caught:
        check_output("s:1", record, bad, sk, exact=True)
    assert caught.value.record is record
    with pytest.raises(ServerFailure, match="contradicts"):
        check_output("s:1", record, y * 2, sk, exact=True)
    check_output("s:1", record, y, sk, exact=True)  # consistent and finite: fine


def test_a_nan_incident_becomes_checkable_evidence_naming_the_first_non_finite_block():
    from types import SimpleNamespace

    from client.onchain import incident_results
    from pollen import evidence as ev

    x = torch.randn(1, 2, 16)
    y = torch.randn(1, 2, 16)
    y[0, 0, 0] = float("nan")
    sk = torch.stack([judgment.sketch(torch.randn(1, 2, 16)) for _ in range(4)])
    sk[2:] = judgment.sketch(y)  # NaN from block 2 on
    msg, _, _ = served(input_hash=ev.input_chain([x]), output_hash=hash_tensor(y),
                       blocks_root=judgment.blocks_root(0, sk))
    record = verifier().check("s:1", msg, expected(input_hash=ev.input_chain([x])), y, sk)
    with pytest.raises(NonFiniteOutput) as caught:
        check_output("s:1", record, y, sk, exact=True)
    caught.value.inputs = [x]
    (finding,) = incident_results(SimpleNamespace(incidents=[caught.value]))
    assert finding.verdict == "faulty" and finding.block == 2 and finding.accused == ["s:1"]
    finding.evidence[0].check()  # hashes, root and named block all consistent: disputable as is
