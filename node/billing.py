"""The block server's side of pay-per-use: who pays for a request, and whether to serve it.

Per request (on the gRPC handler thread, before the compute loop):
  admit(payment, session_id) -> (payer or None, Tier)
    - no payment: free tier (Tier.FREE) if the server offers one, else PaymentRequired;
    - a payment: the session binding must be signed by the payer; a newer voucher is checked and
      kept by the VoucherBook (made out to this operator, within the payer's deposit); a payer
      whose unpaid debt exceeds the credit limit is refused (PaymentRequired) until it pays;
      otherwise Tier.PAID.
After computing: charge(payer, blocks, tokens) adds price x blocks x tokens to the payer's debt.

The client pays each step after verifying its receipt, so an honest payer is at most one step
behind: the credit limit must cover one step (`min_credit_limit`). What a cheating client can
take is bounded by the credit limit, per server; what a server can take is what the client
signed for verified receipts only.

EscrowState reads are cached for `ttl_s`: a deposit can only shrink by a reclaim that takes the
escrow's delay (hours on public chains) to mature, and `redeemed` changes only by this server's
own redemptions (refresh() after each).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import grpc

from node.errors import NodeError
from node.scheduler import Tier
from pollen.billing import read_payment
from pollen.payments import EscrowState, PaymentDomain, VoucherBook, VoucherError, step_cost


class PaymentRequired(NodeError):
    code = grpc.StatusCode.FAILED_PRECONDITION

    def __init__(self, problem: str):
        super().__init__(f"payment required: {problem}")


@dataclass(frozen=True)
class Terms:
    price: int  # wei per block per token
    credit_limit: int  # unpaid wei a payer may owe
    free_tier: bool  # serve unpaid requests (after paid work)


def min_credit_limit(price: int, max_blocks: int, max_tokens: int) -> int:
    """The debt of the one step an honest payer owes before its voucher arrives."""
    return step_cost(price, max_blocks, max_tokens)


class CachedEscrowState:
    """EscrowState with reads cached for `ttl_s` seconds (see module docstring)."""

    def __init__(self, inner: EscrowState, ttl_s: float = 30.0, clock=time.monotonic):
        self.inner, self.ttl_s, self.clock = inner, ttl_s, clock
        self._cache: dict[tuple, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def _get(self, key: tuple, read):
        now = self.clock()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and now - hit[0] < self.ttl_s:
                return hit[1]
        value = read()
        with self._lock:
            self._cache[key] = (now, value)
        return value

    def available(self, client: str, server: str) -> int:
        return self._get(("available", client, server), lambda: self.inner.available(client, server))

    def redeemed(self, client: str, server: str) -> int:
        return self._get(("redeemed", client, server), lambda: self.inner.redeemed(client, server))

    def reclaim_at(self, client: str, server: str) -> int:
        return self._get(("reclaim_at", client, server), lambda: self.inner.reclaim_at(client, server))

    def refresh(self) -> None:
        with self._lock:
            self._cache.clear()


class Billing:
    def __init__(self, book: VoucherBook | None, domain: PaymentDomain | None, terms: Terms):
        if book is None and terms.price:
            raise ValueError("a priced server needs a voucher book")
        self.book, self.domain, self.terms = book, domain, terms
        self.refused = 0  # requests refused for payment reasons (status, tests)

    @property
    def server(self) -> str:
        return self.book.server if self.book else ""

    def admit(self, payment, session_id: bytes) -> tuple[str | None, Tier]:
        """Who pays for this request and at which tier; PaymentRequired when it may not run."""
        if payment is None or not payment.client:
            if not self.terms.free_tier:
                self.refused += 1
                raise PaymentRequired("this server serves paying clients only: attach a Payment "
                                      f"(price {self.terms.price} wei per block per token)")
            return None, Tier.FREE
        if self.book is None:
            return None, Tier.FREE  # a free server: payments are not needed
        try:
            payer, voucher = read_payment(payment, session_id, self.server, self.domain)
            if voucher is not None and voucher.voucher.cumulative > self.book.paid(payer):
                self.book.accept(voucher)
        except VoucherError as exc:
            self.refused += 1
            raise PaymentRequired(str(exc)) from exc
        self.require_current(payer)
        return payer, Tier.PAID

    def require_current(self, payer: str) -> None:
        """PaymentRequired when `payer` owes more than the credit limit beyond its vouchers."""
        if self.book is not None and self.book.behind(payer):
            self.refused += 1
            owed, paid = self.book.owed(payer), self.book.paid(payer)
            raise PaymentRequired(f"{payer} owes {owed - paid} wei beyond its vouchers (credit limit "
                                  f"{self.terms.credit_limit} wei): send a newer voucher")

    def charge(self, payer: str | None, blocks: int, tokens: int) -> None:
        if payer is not None and self.book is not None and self.terms.price:
            self.book.charge(payer, self.terms.price, blocks, tokens)


FREE = Billing(None, None, Terms(0, 0, True))  # a server without an escrow: everything free tier
