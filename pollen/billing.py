"""What travels with a paid request (proto `Payment`), shared by the client and the server.

A paying client names itself and signs a *session binding* — keccak of a tag, the escrow's
domain, the server (operator) and the session id — so nobody can bill another client's tab by
replaying its address; its vouchers (pollen.payments) ride on later requests of the session.

    binding = session_binding(session_id, server, domain)
    msg = payment_message(client_key, session_id, server, domain, voucher=None)
    payer, voucher = read_payment(msg, session_id, server, domain)   # raises VoucherError
"""

from __future__ import annotations

import functools
import json

from eth_utils import keccak, to_checksum_address

from pollen.payments import PaymentDomain, SignedVoucher, VoucherError
from pollen.proto import swarm_pb2 as pb

BINDING_TAG = b"pollen.session.v1"
_HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0


def session_binding(session_id: bytes, server: str, domain: PaymentDomain) -> bytes:
    """32-byte digest a payer signs to claim one session with one server on one escrow."""
    if len(session_id) != 32:
        raise VoucherError(f"session id must be 32 bytes, got {len(session_id)}")
    return keccak(BINDING_TAG + domain.chain_id.to_bytes(32, "big") + bytes.fromhex(domain.escrow[2:])
                  + bytes.fromhex(to_checksum_address(server)[2:]) + bytes(session_id))


@functools.lru_cache(maxsize=64)
def _key(raw: bytes):
    import coincurve

    return coincurve.PrivateKey(raw)


def sign_digest(private_key: bytes | str, digest: bytes) -> bytes:
    """65-byte r || s || v (v in {27, 28}, low s) over a 32-byte digest."""
    raw = bytes.fromhex(private_key.removeprefix("0x")) if isinstance(private_key, str) else bytes(private_key)
    sig = _key(raw).sign_recoverable(digest, hasher=None)
    return sig[:64] + bytes([sig[64] + 27])


def recover_digest(signature: bytes, digest: bytes) -> str:
    """Checksummed signer of `digest`; VoucherError for malformed or non-canonical signatures."""
    import coincurve

    if len(signature) != 65:
        raise VoucherError(f"signature must be 65 bytes, got {len(signature)}")
    if signature[64] not in (27, 28) or int.from_bytes(signature[32:64], "big") > _HALF_N:
        raise VoucherError("signature is not in canonical form (v must be 27/28, s in the lower half)")
    try:
        public = coincurve.PublicKey.from_signature_and_message(
            signature[:64] + bytes([signature[64] - 27]), digest, hasher=None)
    except Exception as exc:  # libsecp256k1 refuses garbage
        raise VoucherError(f"signature does not recover ({exc})") from exc
    return to_checksum_address(keccak(public.format(compressed=False)[1:])[-20:])


def payment_message(client_key: bytes | str, client: str, session_id: bytes, server: str,
                    domain: PaymentDomain, voucher: SignedVoucher | None = None) -> pb.Payment:
    sig = sign_digest(client_key, session_binding(session_id, server, domain))
    msg = pb.Payment(client=to_checksum_address(client), session_sig=sig)
    if voucher is not None:
        msg.voucher = voucher_bytes(voucher)
    return msg


def voucher_bytes(voucher: SignedVoucher) -> bytes:
    return json.dumps(voucher.to_json(), separators=(",", ":")).encode()


def read_payment(msg: pb.Payment, session_id: bytes, server: str,
                 domain: PaymentDomain) -> tuple[str, SignedVoucher | None]:
    """(payer, voucher or None) from a request's Payment; VoucherError naming what is wrong."""
    try:
        client = to_checksum_address(msg.client)
    except ValueError as exc:
        raise VoucherError(f"payer {msg.client!r} is not an address") from exc
    if recover_digest(bytes(msg.session_sig), session_binding(session_id, server, domain)) != client:
        raise VoucherError(f"the session binding is not signed by the payer {client}")
    if not msg.voucher:
        return client, None
    try:
        voucher = SignedVoucher.from_json(json.loads(msg.voucher))
    except ValueError as exc:
        raise VoucherError(f"voucher is not JSON ({exc})") from exc
    if voucher.voucher.client != client:
        raise VoucherError(f"voucher is from {voucher.voucher.client}, but the payer is {client}")
    return client, voucher
