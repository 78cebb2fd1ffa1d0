"""The operator daemon's pay-per-use: declare a price, accept vouchers, redeem them in batches.

    earnings = Earnings.from_deployment(chain, operator, cfg, state_dir)   # None without an escrow
    earnings.declare(blocks)                 # setPrice on chain (after registering: active servers only)
    servicer.billing = earnings.billing      # the block server admits and charges requests
    earnings.tick()                          # every tick: redeem what is due, every redeem_interval_s
    earnings.redeem_due(force=True)          # on shutdown: nothing held is left unredeemed

Vouchers are persisted by the VoucherBook (state_dir/vouchers.json) as they arrive, so a daemon
that crashes redeems them after restart; a client's announced reclaim makes its vouchers urgent
(to_redeem puts them first and redeems them whatever their size).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from node.billing import Billing, CachedEscrowState, Terms, min_credit_limit
from node.state import emit
from pollen.errors import PollenError
from pollen.escrow import Escrow
from pollen.payments import VoucherBook

log = logging.getLogger("pollen.node")
MAX_BATCH = 50  # vouchers per redeem transaction (gas: see benchmarks/gas_payments.py)


class Earnings:
    def __init__(self, escrow: Escrow, operator: str, price: int, credit_limit: int, free_tier: bool,
                 state_dir: Path, redeem_interval_s: float = 30.0, redeem_min_wei: int = 1):
        self.escrow, self.operator = escrow, operator
        self.price, self.credit_limit, self.free_tier = price, credit_limit, free_tier
        self.redeem_interval_s, self.redeem_min_wei = redeem_interval_s, redeem_min_wei
        self.state = CachedEscrowState(escrow.reader())
        self.book = VoucherBook(operator, escrow.domain(), self.state, Path(state_dir) / "vouchers.json",
                                credit_limit=credit_limit)
        self.billing = Billing(self.book, escrow.domain(), Terms(price, credit_limit, free_tier))
        self.redeemed_wei = 0
        self._next = 0.0

    @classmethod
    def from_deployment(cls, chain, operator: str, cfg, state_dir: Path) -> "Earnings | None":
        address = chain.deployment.contracts.get("PaymentEscrow")
        if not address:
            if cfg.price_wei:
                raise PollenError("this deployment has no PaymentEscrow: cannot charge --price-wei")
            return None
        return cls(Escrow(chain, address), operator, cfg.price_wei, cfg.credit_limit_wei, cfg.free_tier,
                   state_dir, cfg.redeem_interval_s)

    def declare(self, blocks: int, max_tokens: int) -> None:
        """Write the price and credit limit on chain (only when they changed)."""
        if not self.credit_limit:
            self.credit_limit = min_credit_limit(self.price, blocks, max_tokens)
            self.book.credit_limit = self.credit_limit
            self.billing.terms = Terms(self.price, self.credit_limit, self.free_tier)
        if self.escrow.terms(self.operator) != (self.price, self.credit_limit):
            self.escrow.set_price(self.price, self.credit_limit)
        emit("price_set", operator=self.operator, price_wei=self.price, credit_limit_wei=self.credit_limit,
             free_tier=self.free_tier)

    def pay_audit(self, dispute_id: int) -> None:
        """Trigger the audit fee of a resolved dispute (AuditFeePayer: coherent auditors are
        credited in the escrow; whoever calls first pays the gas, the others are refused)."""
        address = self.escrow.chain.deployment.contracts.get("AuditFeePayer")
        if not address:
            return
        from pollen import artifacts

        payer = self.escrow.chain.w3.eth.contract(address=address, abi=artifacts.abi("AuditFeePayer"))
        if payer.functions.paid(dispute_id).call():
            return
        try:
            self.escrow.chain.transact(payer.functions.payAudit(dispute_id), "pay audit fees")
        except PollenError as exc:  # another auditor paid first, or not final yet
            log.info("audit fee for dispute %d not paid by us: %s", dispute_id, exc)
            return
        emit("audit_fee_paid", operator=self.operator, dispute_id=dispute_id,
             earned_wei=self.escrow.earned(self.operator))

    def tick(self) -> None:
        if time.monotonic() >= self._next:
            self._next = time.monotonic() + self.redeem_interval_s
            self.redeem_due()

    def redeem_due(self, force: bool = False) -> int:
        """Redeem the vouchers worth it now (all with force); returns wei earned after fees."""
        self.state.refresh()
        due = self.book.to_redeem(min_amount=1 if force else self.redeem_min_wei)
        earned = 0
        for i in range(0, len(due), MAX_BATCH):
            batch = due[i:i + MAX_BATCH]
            try:
                earned += self.escrow.redeem(batch)
            except PollenError as exc:  # chain trouble: the book keeps them for the next try
                log.warning("redeeming %d voucher(s) failed: %s (will retry)", len(batch), exc)
                break
            finally:
                self.state.refresh()
        if earned:
            self.redeemed_wei += earned
            emit("redeemed", operator=self.operator, vouchers=len(due), earned_wei=earned)
        return earned
