"""Pay-per-use vouchers for PaymentEscrow (EIP-712), the client's tab and the server's book.

A client deposits in PaymentEscrow, sets part of it aside for each server it uses (a lane, so
no two servers are paid with the same wei) and pays each off chain with cumulative vouchers

    Voucher(address client, address server, uint256 cumulative, bytes32 receipts)

under the domain (name "PollenPaymentEscrow", version "1", chainId, verifyingContract = escrow).
`cumulative` is everything `client` ever owes `server` (so only the newest voucher matters and
a replayed older one pays nothing); `receipts` is a keccak hash chain over the EIP-712 digests of
the receipts paid for, `receipts_n = keccak(receipts_{n-1} || digest_n)` from 32 zero bytes, so a
voucher names exactly the verified work it pays.

- `ClientTab` (client side, one per server): `charge()` once per receipt that passed
  verification (price x blocks x tokens), `voucher()` signs the next cumulative voucher.
- `VoucherBook` (server side): `accept()` checks a voucher (made out to this server, signed by
  its client, newer than the best one held, within the client's lane for this server as read
  from chain, less any reclaim the client announced) and persists the best voucher per client
  (JSON, atomic write); `charge()` counts each step served, `behind()` says whether a client
  lags more than the advertised credit limit (stop serving it); `to_redeem()` picks the
  vouchers worth redeeming (lanes with an announced reclaim first).
- `EscrowReader`: what the book reads from chain (a web3 contract wrapper); `Escrow`: every
  PaymentEscrow call through a pollen.chain.Chain; `deploy_escrow`.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from eth_abi import encode as abi_encode
from eth_account import Account
from eth_utils import keccak, to_checksum_address

from pollen.errors import PollenError

DOMAIN_NAME = "PollenPaymentEscrow"
DOMAIN_VERSION = "1"
VOUCHER_TYPE = "Voucher(address client,address server,uint256 cumulative,bytes32 receipts)"
VOUCHER_TYPEHASH = keccak(text=VOUCHER_TYPE)
_DOMAIN_TYPEHASH = keccak(
    text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
ZERO_CHAIN = b"\x00" * 32
UINT256 = 2**256


class VoucherError(PollenError):
    """A voucher that is malformed, does not verify, or is not acceptable to this server."""

    def __init__(self, problem: str):
        super().__init__(f"voucher refused: {problem}")


@dataclass(frozen=True)
class PaymentDomain:
    """Where vouchers are valid: one chain, one PaymentEscrow deployment."""

    chain_id: int
    escrow: str  # PaymentEscrow address (the EIP-712 verifyingContract)

    def separator(self) -> bytes:
        return _separator(self.chain_id, self.escrow)


@functools.lru_cache(maxsize=64)
def _separator(chain_id: int, escrow: str) -> bytes:
    """Cached: a domain's separator never changes (the checksum alone costs ~100 us)."""
    return keccak(abi_encode(
        ["bytes32", "bytes32", "bytes32", "uint256", "address"],
        [_DOMAIN_TYPEHASH, keccak(text=DOMAIN_NAME), keccak(text=DOMAIN_VERSION), chain_id,
         to_checksum_address(escrow)]))


@functools.lru_cache(maxsize=4096)
def _normal_address(address: str) -> str:
    return to_checksum_address(address)


@functools.lru_cache(maxsize=4096)
def _address_word(address: str) -> bytes:
    return b"\x00" * 12 + bytes.fromhex(to_checksum_address(address)[2:])


@dataclass(frozen=True)
class Voucher:
    """`client` owes `server` `cumulative` wei in total, for the receipts chained in `receipts`."""

    client: str
    server: str
    cumulative: int
    receipts: bytes  # 32-byte hash chain of paid receipt digests

    def __post_init__(self) -> None:
        if not isinstance(self.cumulative, int) or not 0 <= self.cumulative < UINT256:
            raise VoucherError(f"cumulative must be a uint256, got {self.cumulative!r:.80}")
        if not isinstance(self.receipts, (bytes, bytearray)) or len(self.receipts) != 32:
            raise VoucherError(f"receipts must be 32 bytes, got {self.receipts!r:.80}")
        for name in ("client", "server"):
            try:
                object.__setattr__(self, name, _normal_address(getattr(self, name)))
            except (ValueError, TypeError) as exc:
                raise VoucherError(f"{name} is not an address ({getattr(self, name)!r:.60})") from exc

    def struct_hash(self) -> bytes:
        return keccak(VOUCHER_TYPEHASH + _address_word(self.client) + _address_word(self.server)
                      + self.cumulative.to_bytes(32, "big") + bytes(self.receipts))

    def digest(self, domain: PaymentDomain) -> bytes:
        """The EIP-712 digest the client signs and the escrow recovers from."""
        return keccak(b"\x19\x01" + domain.separator() + self.struct_hash())

    def as_tuple(self) -> tuple:
        """Positional form for the contract's `Voucher` struct argument."""
        return (self.client, self.server, self.cumulative, bytes(self.receipts))

    def typed_data(self, domain: PaymentDomain) -> dict[str, Any]:
        """The full EIP-712 message (for wallets' eth_signTypedData_v4 and cross-checks)."""
        return {
            "types": {
                "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                                 {"name": "chainId", "type": "uint256"},
                                 {"name": "verifyingContract", "type": "address"}],
                "Voucher": [{"name": "client", "type": "address"}, {"name": "server", "type": "address"},
                            {"name": "cumulative", "type": "uint256"}, {"name": "receipts", "type": "bytes32"}],
            },
            "primaryType": "Voucher",
            "domain": {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": domain.chain_id,
                       "verifyingContract": to_checksum_address(domain.escrow)},
            "message": {"client": self.client, "server": self.server, "cumulative": self.cumulative,
                        "receipts": bytes(self.receipts)},
        }


@dataclass(frozen=True)
class SignedVoucher:
    voucher: Voucher
    signature: bytes  # 65 bytes, r || s || v

    def to_json(self) -> dict[str, Any]:
        v = self.voucher
        return {"client": v.client, "server": v.server, "cumulative": str(v.cumulative),
                "receipts": "0x" + bytes(v.receipts).hex(), "signature": "0x" + self.signature.hex()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "SignedVoucher":
        try:
            v = Voucher(data["client"], data["server"], int(data["cumulative"]),
                        bytes.fromhex(str(data["receipts"]).removeprefix("0x")))
            return cls(v, bytes.fromhex(str(data["signature"]).removeprefix("0x")))
        except (KeyError, ValueError, TypeError) as exc:
            raise VoucherError(f"cannot parse voucher JSON ({exc})") from exc


_SECP256K1_HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0


def sign_digest(private_key: bytes | str, digest: bytes) -> bytes:
    """65-byte r || s || v over a 32-byte digest (libsecp256k1 via coincurve: low s, v in {27, 28})."""
    key = bytes.fromhex(private_key.removeprefix("0x")) if isinstance(private_key, str) else bytes(private_key)
    sig = _private_key(key).sign_recoverable(digest, hasher=None)
    return sig[:64] + bytes([sig[64] + 27])


def recover_digest(signature: bytes, digest: bytes) -> str:
    """Checksummed signer of `digest`; raises VoucherError if the signature is malformed or one
    the escrow refuses (high s, v not 27/28), so what passes here passes on chain."""
    import coincurve

    if len(signature) != 65:
        raise VoucherError(f"signature must be 65 bytes, got {len(signature)}")
    if signature[64] not in (27, 28) or int.from_bytes(signature[32:64], "big") > _SECP256K1_HALF_N:
        raise VoucherError("signature is not in canonical form (v must be 27/28, s in the lower half)")
    try:
        public = coincurve.PublicKey.from_signature_and_message(signature[:64] + bytes([signature[64] - 27]),
                                                                digest, hasher=None)
    except Exception as exc:  # libsecp256k1 refuses garbage signatures
        raise VoucherError(f"signature does not recover ({exc})") from exc
    return _checksum(keccak(public.format(compressed=False)[1:])[-20:])


def sign_voucher(voucher: Voucher, domain: PaymentDomain, private_key: bytes | str) -> SignedVoucher:
    """Sign `voucher` with the client's key."""
    return SignedVoucher(voucher, sign_digest(private_key, voucher.digest(domain)))


@functools.lru_cache(maxsize=64)
def _private_key(key: bytes) -> Any:
    import coincurve

    return coincurve.PrivateKey(key)


def recover_voucher_signer(signed: SignedVoucher, domain: PaymentDomain) -> str:
    """Checksummed address that signed (see recover_digest for what is refused)."""
    return recover_digest(signed.signature, signed.voucher.digest(domain))


@functools.lru_cache(maxsize=4096)
def _checksum(raw: bytes) -> str:
    return to_checksum_address(raw)


def chain_receipt(previous: bytes, receipt_digest: bytes) -> bytes:
    """Next link of the paid-receipts hash chain (keccak, so a contract could recompute it)."""
    if len(previous) != 32 or len(receipt_digest) != 32:
        raise VoucherError("receipt chain links must be 32 bytes")
    return keccak(bytes(previous) + bytes(receipt_digest))


def step_cost(price: int, blocks: int, tokens: int) -> int:
    """Wei owed for serving `blocks` blocks to `tokens` tokens at `price` wei per block-token."""
    for name, value in (("price", price), ("blocks", blocks), ("tokens", tokens)):
        if not isinstance(value, int) or value < 0:
            raise VoucherError(f"{name} must be a non-negative integer, got {value!r}")
    return price * blocks * tokens


# ---------------------------------------------------------------------------------------------
# Client side


class ClientTab:
    """What one client owes one server, across sessions. Call `charge` only for receipts that
    passed verification; `voucher` signs the running total. Start from the last voucher the
    client signed for this server (its own record, or the server's copy via `resume`)."""

    def __init__(self, private_key: bytes | str, server: str, domain: PaymentDomain, price: int,
                 cumulative: int = 0, receipts: bytes = ZERO_CHAIN):
        self._key = private_key
        self.client = Account.from_key(private_key).address
        self.server = to_checksum_address(server)
        self.domain = domain
        self.price = price
        self.cumulative = cumulative
        self.receipts = receipts
        self.charged_steps = 0

    def resume(self, signed: SignedVoucher) -> None:
        """Continue from a voucher this client signed earlier (e.g. the server's best copy)."""
        v = signed.voucher
        if v.client != self.client or v.server != self.server:
            raise VoucherError(f"voucher is {v.client} -> {v.server}, not this tab's {self.client} -> {self.server}")
        if recover_voucher_signer(signed, self.domain) != self.client:
            raise VoucherError("not signed by this client")
        if v.cumulative > self.cumulative:
            self.cumulative, self.receipts = v.cumulative, bytes(v.receipts)

    def charge(self, receipt_digest: bytes, blocks: int, tokens: int) -> int:
        """Add one verified receipt (its EIP-712 digest) of `blocks` blocks x `tokens` tokens;
        returns its cost."""
        cost = step_cost(self.price, blocks, tokens)
        self.receipts = chain_receipt(self.receipts, receipt_digest)
        self.cumulative += cost
        self.charged_steps += 1
        return cost

    def voucher(self) -> SignedVoucher:
        """The signed voucher for everything charged so far."""
        return sign_voucher(Voucher(self.client, self.server, self.cumulative, self.receipts),
                            self.domain, self._key)

    def pay(self, receipt_digest: bytes, blocks: int, tokens: int) -> SignedVoucher:
        """`charge` then `voucher`: pay each verified step as it arrives."""
        self.charge(receipt_digest, blocks, tokens)
        return self.voucher()


# ---------------------------------------------------------------------------------------------
# Server side


class EscrowState(Protocol):
    """What the voucher book reads from chain (the client's lane for this server)."""

    def available(self, client: str, server: str) -> int:
        """Wei in the lane a server can still count on (minus any announced reclaim)."""

    def redeemed(self, client: str, server: str) -> int:
        """Cumulative wei already redeemed by `server` from `client`."""

    def reclaim_at(self, client: str, server: str) -> int:
        """Unix time an announced reclaim of the lane becomes takeable (0: none announced)."""


class EscrowReader:
    """EscrowState over a web3 PaymentEscrow contract (`w3.eth.contract(address, abi)`)."""

    def __init__(self, contract: Any):
        self.contract = contract

    def lane(self, client: str, server: str) -> dict[str, int]:
        amount, redeemed, reclaim_amount, reclaim_at = self.contract.functions.laneOf(client, server).call()
        return {"amount": amount, "redeemed": redeemed, "reclaim_amount": reclaim_amount, "reclaim_at": reclaim_at}

    def available(self, client: str, server: str) -> int:
        lane = self.lane(client, server)
        return max(0, lane["amount"] - lane["reclaim_amount"])

    def redeemed(self, client: str, server: str) -> int:
        return self.contract.functions.redeemed(client, server).call()

    def reclaim_at(self, client: str, server: str) -> int:
        return self.lane(client, server)["reclaim_at"]


class VoucherBook:
    """The best (highest) voucher of each client for one server, persisted to `path` (JSON)."""

    def __init__(self, server: str, domain: PaymentDomain, state: EscrowState, path: Path | str,
                 credit_limit: int = 0):
        self.server = to_checksum_address(server)
        self.domain = domain
        self.state = state
        self.path = Path(path)
        self.credit_limit = credit_limit
        self._lock = threading.Lock()
        self._best: dict[str, SignedVoucher] = self._load()
        self._owed: dict[str, int] = {}  # cumulative wei each client owes for what was served

    def _load(self) -> dict[str, SignedVoucher]:
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text())
            best = {to_checksum_address(c): SignedVoucher.from_json(v) for c, v in data["vouchers"].items()}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise VoucherError(f"voucher book {self.path} is unreadable ({exc})") from exc
        for client, signed in best.items():
            if signed.voucher.server != self.server or signed.voucher.client != client:
                raise VoucherError(f"voucher book {self.path} holds a voucher for another pair")
        return best

    def _save(self) -> None:
        payload = {"server": self.server, "chainId": self.domain.chain_id, "escrow": self.domain.escrow,
                   "vouchers": {c: s.to_json() for c, s in sorted(self._best.items())}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(payload, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def best(self, client: str) -> SignedVoucher | None:
        return self._best.get(to_checksum_address(client))

    def paid(self, client: str) -> int:
        """Cumulative amount of the best voucher held from `client` (0 if none)."""
        best = self.best(client)
        return best.voucher.cumulative if best else 0

    def accept(self, signed: SignedVoucher) -> int:
        """Check and keep a voucher; returns how much it adds over the best one held.
        Raises VoucherError naming the problem (wrong server, forged, stale, over deposit)."""
        v = signed.voucher
        if v.server != self.server:
            raise VoucherError(f"made out to {v.server}, not this server {self.server}")
        if recover_voucher_signer(signed, self.domain) != v.client:
            raise VoucherError(f"not signed by its client {v.client}")
        with self._lock:
            held = self.paid(v.client)
            if v.cumulative <= held:
                raise VoucherError(f"stale: cumulative {v.cumulative} <= {held} already held from {v.client}")
            unredeemed = v.cumulative - self.state.redeemed(v.client, self.server)
            available = self.state.available(v.client, self.server)
            if unredeemed > available:
                raise VoucherError(f"over deposit: {unredeemed} wei unredeemed > {available} wei in "
                                   f"{v.client}'s lane for this server")
            self._best[v.client] = signed
            self._save()
            return v.cumulative - held

    def charge(self, client: str, price: int, blocks: int, tokens: int) -> int:
        """Record one step served to `client` (at the price quoted for its session); returns
        the client's cumulative debt, counted from the best voucher held when first seen."""
        client = to_checksum_address(client)
        with self._lock:
            owed = max(self._owed.get(client, 0), self.paid(client)) + step_cost(price, blocks, tokens)
            self._owed[client] = owed
            return owed

    def owed(self, client: str) -> int:
        """Cumulative wei `client` owes for what was served (at least what it has paid)."""
        client = to_checksum_address(client)
        return max(self._owed.get(client, 0), self.paid(client))

    def behind(self, client: str, owed: int | None = None) -> bool:
        """Whether `client` (owing `owed` cumulative wei, default what `charge` counted) lags
        more than the credit limit: the server stops serving its sessions until it pays."""
        owed = self.owed(client) if owed is None else owed
        return owed - self.paid(client) > self.credit_limit

    def to_redeem(self, min_amount: int = 1, limit: int | None = None) -> list[SignedVoucher]:
        """Best vouchers worth redeeming now: those whose client announced a reclaim first
        (they must be redeemed before it matures), then by unredeemed value, largest first;
        at most `limit`, each paying at least `min_amount` (or any amount if a reclaim is due)."""
        picked = []
        for client, signed in self._best.items():
            owed = signed.voucher.cumulative - self.state.redeemed(client, self.server)
            if owed <= 0:
                continue
            urgent = self.state.reclaim_at(client, self.server) != 0
            if owed >= min_amount or urgent:
                picked.append((not urgent, -owed, client, signed))
        picked.sort(key=lambda t: t[:3])
        out = [p[3] for p in picked]
        return out if limit is None else out[:limit]

    def unredeemed(self) -> int:
        """Total wei held in vouchers and not yet redeemed."""
        return sum(max(0, s.voucher.cumulative - self.state.redeemed(c, self.server))
                   for c, s in self._best.items())


def redeem_args(vouchers: list[SignedVoucher]) -> tuple[list[tuple], list[bytes]]:
    """(vouchers, signatures) as PaymentEscrow.redeem takes them."""
    return [s.voucher.as_tuple() for s in vouchers], [s.signature for s in vouchers]
