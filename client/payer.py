"""The client's side of pay-per-use: pay each server for the steps whose receipts verified.

One `ClientTab` (pollen.payments) per server operator, cumulative across sessions. A request to
a server carries a Payment (pollen.billing): the payer, its signature binding the session, and
the newest voucher for that operator if it grew since the last one sent. A step is charged only
after its receipt verified and its output passed the checks, and only when the receipt is
disputable (checked against the registry): payment never flows to a receipt nobody could
dispute. The last step of a session is paid on the next request to that server (an honest
server is owed at most one step; its credit limit covers it).

    payer = Payer(key, escrow.domain(), price_of=lambda operator: escrow.terms(operator)[0])
    model.use_payer(payer)          # client.model; or RemoteRunner.payer / InferenceSession.payer
"""

from __future__ import annotations

import threading
from typing import Callable

from eth_account import Account

from client.verify import ReceiptRecord
from pollen.billing import payment_message, voucher_bytes
from pollen.payments import ClientTab, PaymentDomain, SignedVoucher
from pollen.proto import swarm_pb2 as pb


class Payer:
    def __init__(self, private_key: bytes | str, domain: PaymentDomain, price_of: Callable[[str], int]):
        self.key, self.domain, self.price_of = private_key, domain, price_of
        self.address = Account.from_key(private_key).address
        self.tabs: dict[str, ClientTab] = {}
        self._sent: dict[str, int] = {}  # operator -> cumulative of the last voucher sent
        self._bindings: dict[tuple[bytes, str], pb.Payment] = {}
        self.unpaid_receipts = 0  # verified but not disputable: not paid (see module docstring)
        self._lock = threading.Lock()

    def tab(self, operator: str) -> ClientTab:
        key = operator.lower()
        if key not in self.tabs:
            self.tabs[key] = ClientTab(self.key, operator, self.domain, int(self.price_of(operator)))
        return self.tabs[key]

    def payment(self, session_id: bytes, operator: str, first: bool = True) -> pb.Payment | None:
        """The Payment for a request of `session_id` to `operator`: always on a session's first
        request, later only when a newer voucher is due (None otherwise)."""
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
        tab = self.tabs.get(operator.lower())
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
            return self.tab(record.receipt.server).charge(domain_digest, blocks, tokens)

    def owed(self) -> dict[str, int]:
        """Cumulative wei signed over to each operator so far."""
        return {op: tab.cumulative for op, tab in self.tabs.items()}
