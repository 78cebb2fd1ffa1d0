"""What travels with a paid request (proto `Payment`), shared by the client and the server.

A paying client names itself and signs a *session binding* — keccak of a tag, the escrow's
domain, the server (operator) and the session id — so nobody can bill another client's tab by
replaying its address; its vouchers (pollen.payments) ride on later requests of the session.

    binding = session_binding(session_id, server, domain)
    msg = payment_message(client_key, session_id, server, domain, voucher=None)
    payer, voucher = read_payment(msg, session_id, server, domain)   # raises VoucherError
"""

from __future__ import annotations

import json

from eth_utils import keccak, to_checksum_address

from pollen.payments import PaymentDomain, SignedVoucher, VoucherError, recover_digest, sign_digest
from pollen.proto import swarm_pb2 as pb

BINDING_TAG = b"pollen.session.v1"


def session_binding(session_id: bytes, server: str, domain: PaymentDomain) -> bytes:
    """32-byte digest a payer signs to claim one session with one server on one escrow."""
    if len(session_id) != 32:
        raise VoucherError(f"session id must be 32 bytes, got {len(session_id)}")
    return keccak(BINDING_TAG + domain.chain_id.to_bytes(32, "big") + bytes.fromhex(domain.escrow[2:])
                  + bytes.fromhex(to_checksum_address(server)[2:]) + bytes(session_id))


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
