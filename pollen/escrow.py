"""PaymentEscrow on chain, through a pollen.chain.Chain (its account signs, reverts come back by
name): deploy it, read prices and balances, deposit, allocate lanes, redeem voucher batches,
reclaim, withdraw. Vouchers themselves, the client's tab and the server's book: pollen/payments.py."""

from __future__ import annotations

from typing import Any

from eth_utils import to_checksum_address

from pollen.payments import EscrowReader, PaymentDomain, SignedVoucher, VoucherError, redeem_args

DEFAULT_FEE_BPS = 100  # 1 % of every redemption funds the audit pool
# Seconds between announcing a reclaim and taking it: a server must redeem within it, so on a
# public chain a day (a daemon that is down for hours still gets paid); fast on anvil.
RECLAIM_DELAYS = {"anvil": 600, "gnosis-chiado": 86_400, "gnosis": 86_400,
                  "filecoin-calibration": 86_400, "filecoin": 86_400}


def deploy_escrow(w3: Any, account: Any, registry: str, fee_bps: int = DEFAULT_FEE_BPS,
                  reclaim_delay: int = RECLAIM_DELAYS["anvil"], owner: str | None = None) -> str:
    """Deploy a PaymentEscrow reading `registry`; returns its address. `account` (an
    eth_account LocalAccount) deploys it and is the owner unless `owner` is given (then it must
    still name the audit payer before handing over: `Escrow.set_audit_payer`)."""
    from pollen.deploy import _deploy

    return _deploy(w3, account, "PaymentEscrow", to_checksum_address(registry), fee_bps, reclaim_delay,
                   to_checksum_address(owner or account.address))


class Escrow:
    """PaymentEscrow through a pollen.chain.Chain (`chain.transact` signs with its account)."""

    def __init__(self, chain: Any, address: str):
        from pollen import artifacts

        self.chain = chain
        self.contract = chain.w3.eth.contract(address=to_checksum_address(address),
                                              abi=artifacts.abi("PaymentEscrow"))

    def _send(self, action: str, fn: Any, value: int = 0) -> Any:
        return self.chain.transact(fn, action, value=value)

    @property
    def address(self) -> str:
        return self.contract.address

    def domain(self) -> PaymentDomain:
        return PaymentDomain(chain_id=self.chain.w3.eth.chain_id, escrow=self.contract.address)

    def reader(self) -> EscrowReader:
        return EscrowReader(self.contract)

    # reads
    def balance(self, client: str) -> int:
        """A client's unallocated deposit."""
        return self.contract.functions.balanceOf(client).call()

    def lane(self, client: str, server: str) -> dict[str, int]:
        """A client's lane for a server: amount, redeemed, reclaim_amount, reclaim_at."""
        return self.reader().lane(client, server)

    def terms(self, server: str) -> tuple[int, int]:
        """(price wei per block-token, credit limit wei) a server declared."""
        price, limit = self.contract.functions.termsOf(server).call()
        return price, limit

    def earned(self, account: str) -> int:
        return self.contract.functions.earned(account).call()

    def fee_bps(self) -> int:
        return self.contract.functions.feeBps().call()

    # writes
    def deposit(self, amount: int) -> Any:
        return self._send("deposit", self.contract.functions.deposit(), value=amount)

    def allocate(self, lanes: dict[str, int], value: int = 0) -> Any:
        """Set aside lanes[server] wei for each server (sending `value` more first)."""
        servers = [to_checksum_address(s) for s in lanes]
        return self._send("allocate", self.contract.functions.allocate(servers, list(lanes.values())), value=value)

    def withdraw_deposit(self, amount: int) -> Any:
        return self._send("withdraw deposit", self.contract.functions.withdrawDeposit(amount))

    def announce_reclaim(self, server: str, amount: int) -> Any:
        return self._send("announce reclaim", self.contract.functions.announceReclaim(server, amount))

    def cancel_reclaim(self, server: str) -> Any:
        return self._send("cancel reclaim", self.contract.functions.cancelReclaim(server))

    def reclaim(self, server: str) -> Any:
        return self._send("reclaim", self.contract.functions.reclaim(server))

    def withdraw(self) -> Any:
        return self._send("withdraw earnings", self.contract.functions.withdraw())

    def spend_earned(self, amount: int) -> Any:
        return self._send("spend earnings", self.contract.functions.spendEarned(amount))

    def set_price(self, price: int, credit_limit: int) -> Any:
        return self._send("set price", self.contract.functions.setPrice(price, credit_limit))

    def set_audit_payer(self, payer: str) -> Any:
        return self._send("set audit payer", self.contract.functions.setAuditPayer(to_checksum_address(payer)))

    def redeem(self, vouchers: list[SignedVoucher], max_fee_bps: int | None = None) -> int:
        """Redeem a batch; returns the wei earned after the fee (the fee read now is the most
        accepted unless `max_fee_bps` says otherwise)."""
        if not vouchers:
            raise VoucherError("nothing to redeem: empty batch")
        limit = self.fee_bps() if max_fee_bps is None else max_fee_bps
        args = redeem_args(vouchers)
        receipt = self._send("redeem vouchers", self.contract.functions.redeem(*args, limit))
        from web3.logs import DISCARD

        events = self.contract.events.BatchRedeemed().process_receipt(receipt, errors=DISCARD)
        return sum(e["args"]["gross"] - e["args"]["fee"] for e in events)
