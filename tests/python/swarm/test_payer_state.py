"""client/payer.py's tabs across runs: a restarted client resumes what it signed and pays the
step it still owed; a state file of another account or escrow, or a damaged one, is refused."""

from __future__ import annotations

import os
import types

import pytest
from eth_account import Account

from client.errors import ClientError
from client.payer import Payer
from pollen.payments import PaymentDomain

DOMAIN = PaymentDomain(chain_id=31337, escrow="0x" + "ee" * 20)
SERVER = Account.create().address


def record():
    return types.SimpleNamespace(receipt=types.SimpleNamespace(server=SERVER), disputable=True)


def test_a_restarted_payer_resumes_its_tabs_and_pays_the_owed_step(tmp_path):
    client, state = Account.create(), tmp_path / "payer.json"
    first = Payer(client.key, DOMAIN, price_of=lambda _: 10, state_file=state)
    first.payment(os.urandom(32), SERVER)  # session opened, nothing due yet
    first.paid_step(record(), os.urandom(32), 3, 6)  # 180 wei, charged after its receipt verified
    sent = first.payment(os.urandom(32), SERVER, first=False)  # the next request carries it
    first.paid_step(record(), os.urandom(32), 3, 1)  # the session's last step: not sent (process exits)
    assert sent.voucher and first.owed() == {SERVER.lower(): 210}

    again = Payer(client.key, DOMAIN, price_of=lambda _: 10, state_file=state)
    msg = again.payment(os.urandom(32), SERVER)  # a new session's first request pays the owed step
    assert again.owed() == {SERVER.lower(): 210} and msg.voucher
    again.paid_step(record(), os.urandom(32), 3, 1)
    assert again.owed() == {SERVER.lower(): 240}  # cumulative carries on from the earlier run
    fresh = Payer(client.key, DOMAIN, price_of=lambda _: 10)  # no state file: starts from zero
    assert fresh.owed() == {}


def test_a_state_file_of_another_account_or_a_damaged_one_is_refused(tmp_path):
    state = tmp_path / "payer.json"
    owner = Payer(Account.create().key, DOMAIN, price_of=lambda _: 10, state_file=state)
    owner.paid_step(record(), os.urandom(32), 1, 1)
    with pytest.raises(ClientError, match="belongs to"):
        Payer(Account.create().key, DOMAIN, price_of=lambda _: 10, state_file=state)
    other_escrow = PaymentDomain(chain_id=31337, escrow="0x" + "dd" * 20)
    with pytest.raises(ClientError, match="belongs to"):
        Payer(owner.key, other_escrow, price_of=lambda _: 10, state_file=state)
    state.write_text("{not json")
    with pytest.raises(ClientError, match="unreadable.*move it away"):
        Payer(owner.key, DOMAIN, price_of=lambda _: 10, state_file=state)
