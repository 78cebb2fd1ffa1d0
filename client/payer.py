"""The client's side of pay-per-use: pay each server for the steps whose receipts verified.

One `ClientTab` (pollen.payments) per server operator, cumulative across sessions. A request to
a server carries a Payment (pollen.billing): the payer, its signature binding the session, and
the newest voucher for that operator if it grew since the last one sent. A step is charged only
after its receipt verified and its output passed the checks, and only when the receipt is
disputable (checked against the registry): payment never flows to a receipt nobody could
dispute. The last step of a session is paid on the next request to that server (an honest
server is owed at most one step; its credit limit covers it).

With `state_file`, the tabs survive the process: every charge is written (atomically) before the
voucher goes out, and a new Payer over the same file resumes them, so a client that exits right
after a session pays that session's last step with its next run's first request (without it a
restarted client would start from zero, stay a step behind forever and soon hit the credit limit).

    payer = Payer(key, escrow.domain(), price_of=lambda operator: escrow.terms(operator)[0],
                  state_file=Path(cache_dir) / "payer.json")
    model.use_payer(payer)          # client.model; or RemoteRunner.payer / InferenceSession.payer
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Callable

from eth_account import Account

from client.errors import ClientError
from client.verify import ReceiptRecord
from pollen.billing import payment_message, voucher_bytes
from pollen.payments import ClientTab, PaymentDomain, SignedVoucher
from pollen.proto import swarm_pb2 as pb


class Payer:
    def __init__(self, private_key: bytes | str, domain: PaymentDomain, price_of: Callable[[str], int],
                 state_file: str | Path | None = None, fund: Callable[[str], object] | None = None):
        self.key, self.domain, self.price_of = private_key, domain, price_of
        self.address = Account.from_key(private_key).address
        self.tabs: dict[str, ClientTab] = {}
        self._sent: dict[str, int] = {}  # operator -> cumulative of the last voucher sent
        self._bindings: dict[tuple[bytes, str], pb.Payment] = {}
        self.unpaid_receipts = 0  # verified but not disputable: not paid (see module docstring)
        self._lock = threading.Lock()
        self.state_file = Path(state_file) if state_file else None
        self._saved = self._load()  # operator -> (cumulative, receipts) from an earlier run
        self.fund = fund  # called once per operator before its first session here (e.g. LaneFunder)
        self._funded: set[str] = set()

    def tab(self, operator: str) -> ClientTab:
        key = operator.lower()
        if key not in self.tabs:
            cumulative, receipts = self._saved.get(key, (0, bytes(32)))
            self.tabs[key] = ClientTab(self.key, operator, self.domain, int(self.price_of(operator)),
                                       cumulative=cumulative, receipts=receipts)
        return self.tabs[key]

    def _scope(self) -> str:
        """Whose tabs a state file holds: this payer on this escrow (a file is never reused elsewhere)."""
        return f"{self.address}@{self.domain.chain_id}:{self.domain.escrow}".lower()

    def _load(self) -> dict[str, tuple[int, bytes]]:
        if self.state_file is None or not self.state_file.exists():
            return {}
        try:
            data = json.loads(self.state_file.read_text())
            if data.get("scope") != self._scope():
                raise ClientError(f"payer state {self.state_file} belongs to {data.get('scope')}, not "
                                  f"{self._scope()}: use another file for this account or escrow")
            tabs = {op.lower(): (int(t["cumulative"]), bytes.fromhex(t["receipts"]))
                    for op, t in data["tabs"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ClientError(f"payer state {self.state_file} is unreadable ({exc}): restore it or move it "
                              "away (a fresh tab starts from zero and the servers will refuse it once it "
                              "falls a step behind)") from exc
        if any(c < 0 or len(r) != 32 for c, r in tabs.values()):
            raise ClientError(f"payer state {self.state_file} holds a negative amount or a bad receipt chain")
        return tabs

    def _save(self) -> None:
        if self.state_file is None:
            return
        tabs = {op: {"cumulative": t.cumulative, "receipts": t.receipts.hex()} for op, t in self.tabs.items()}
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"scope": self._scope(), "tabs": tabs}, indent=1))
        os.replace(tmp, self.state_file)

    def payment(self, session_id: bytes, operator: str, first: bool = True) -> pb.Payment | None:
        """The Payment for a request of `session_id` to `operator`: always on a session's first
        request, later only when a newer voucher is due (None otherwise)."""
        if first and self.fund is not None and operator.lower() not in self._funded:
            self.fund(operator)  # before the server first reads our lane (outside the lock: a transaction)
            self._funded.add(operator.lower())
        with self._lock:
            voucher = self._due(operator)
            if voucher is None and not first:
                return None
            key = (bytes(session_id), operator.lower())
            if key not in self._bindings:
                self._bindings[key] = payment_message(self.key, self.address, session_id, operator, self.domain)
            msg = pb.Payment()
            msg.CopyFrom(self._bindings[key])
        if voucher is not None:
            msg.voucher = voucher_bytes(voucher)
        return msg

    def _due(self, operator: str) -> SignedVoucher | None:
        key = operator.lower()
        tab = self.tab(operator) if key in self._saved else self.tabs.get(key)  # resumed tabs are due at once
        if tab is None or tab.cumulative <= self._sent.get(operator.lower(), 0):
            return None
        self._sent[operator.lower()] = tab.cumulative
        return tab.voucher()

    def paid_step(self, record: ReceiptRecord, domain_digest: bytes, blocks: int, tokens: int) -> int:
        """Charge one verified step; returns its cost (0 if the receipt is not disputable)."""
        if not record.disputable:
            self.unpaid_receipts += 1
            return 0
        with self._lock:
            cost = self.tab(record.receipt.server).charge(domain_digest, blocks, tokens)
            self._save()
            return cost

    def owed(self) -> dict[str, int]:
        """Cumulative wei signed over to each operator so far."""
        return {op: c for op, (c, _) in self._saved.items()} | {op: tab.cumulative for op, tab in self.tabs.items()}


class LaneFunder:
    """Keeps a lane for every server the client pays: before the first session with a server,
    if the lane holds less than half of `lane_wei`, top it up to `lane_wei` (from the unallocated
    deposit first, sending only the rest). `escrow` is a pollen.escrow.Escrow."""

    def __init__(self, escrow, client: str, lane_wei: int, log=None):
        if lane_wei <= 0:
            raise ClientError(f"lane_wei must be > 0, not {lane_wei}")
        self.escrow, self.client, self.lane_wei = escrow, client, int(lane_wei)
        self.log = log or (lambda *_: None)
        self.sent = 0  # wei this funder sent to the escrow (not counting allocated deposit)

    def __call__(self, operator: str) -> int:
        """Top up `operator`'s lane; returns the wei set aside (0 when it held enough)."""
        held = self.escrow.lane(self.client, operator)["amount"]
        if held * 2 >= self.lane_wei:
            return 0
        top = self.lane_wei - held
        value = max(0, top - self.escrow.balance(self.client))
        self.escrow.allocate({operator: top}, value=value)
        self.sent += value
        self.log(f"lane for {operator}: +{top} wei (sent {value})")
        return top
