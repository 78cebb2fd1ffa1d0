"""`pollen node status`: the chain's view of an operator joined with its daemon's state file."""

from __future__ import annotations

import os
from pathlib import Path

from eth_utils import is_address, to_checksum_address

from node.errors import ConfigError
from node.state import StateStore
from pollen.chain import Chain, Deployment

WEI = 10**18


def collect(deployment: str, operator: str = "", state_dir: str = "") -> dict:
    if operator and not is_address(operator):
        raise ConfigError(f"--operator {operator!r} is not an address")
    folder = state_dir or (os.path.join(".cache", "node", to_checksum_address(operator)) if operator else "")
    if not folder:
        raise ConfigError("give --operator or --state-dir")
    state = StateStore(folder).load() if Path(folder, "state.json").exists() else None
    if state is None and not operator:
        raise ConfigError(f"no daemon state in {folder}")
    operator = to_checksum_address(operator or state.operator)
    chain = Chain.connect(Deployment.load(deployment))
    server = chain.server(operator)
    account = chain.account_of(operator)
    audits = [vars(a) for a in state.audits.values()] if state else []
    return {"operator": operator, "server_status": server["status"], "endpoint": server["endpoint"],
            "version_id": server["version_id"], "span": [server["first_block"], server["last_block"]],
            "signer": server["signer"], "staked": account["staked"] / WEI,
            "unbonding": account["unbonding"] / WEI, "frozen_disputes": account["frozen_count"],
            "withdrawable_credits": chain.credits_of(operator) / WEI,
            "sessions_served": (state.stats.get("sessions_served", 0) if state else None),
            "receipts_signed": (state.stats.get("receipts_signed", 0) if state else None),
            "slashed": (state.stats.get("slashed_wei", 0) / WEI if state else None),
            "last_block": state.last_block if state else None,
            "daemon": state.status if state else {}, "audits": audits,
            **_earnings(chain, operator, Path(folder))}


def _earnings(chain, operator: str, folder: Path) -> dict:
    """Price, earnings and vouchers held but not redeemed (PaymentEscrow deployments only)."""
    from pollen.payments import VoucherBook
    from pollen.escrow import Escrow

    address = chain.deployment.contracts.get("PaymentEscrow")
    if not address:
        return {}
    escrow = Escrow(chain, address)
    price, limit = escrow.terms(operator)
    book = VoucherBook(operator, escrow.domain(), escrow.reader(), folder / "vouchers.json")
    return {"price_wei": price, "credit_limit_wei": limit, "earned": escrow.earned(operator) / WEI,
            "vouchers_held": len(book.to_redeem(min_amount=1)), "unredeemed": book.unredeemed() / WEI}


def render(info: dict) -> str:
    lines = [f"operator          {info['operator']}",
             f"server            {info['server_status']}  {info['endpoint']}  version {info['version_id']}  "
             f"blocks [{info['span'][0]}, {info['span'][1]})",
             f"stake             {info['staked']:.4f} staked, {info['unbonding']:.4f} unbonding"
             + (f", frozen by {info['frozen_disputes']} open dispute(s)" if info["frozen_disputes"] else ""),
             f"rewards           {info['withdrawable_credits']:.4f} withdrawable",
             f"served            {info['sessions_served']} sessions, {info['receipts_signed']} receipts signed",
             f"slashed           {info['slashed']}",
             f"last block seen   {info['last_block']}"]
    if "price_wei" in info:
        lines.append(f"price             {info['price_wei']} wei per block-token, credit limit "
                     f"{info['credit_limit_wei']} wei")
        lines.append(f"earnings          {info['earned']:.6f} withdrawable in the escrow, "
                     f"{info['unredeemed']:.6f} in {info['vouchers_held']} voucher(s) not redeemed yet")
    for a in info["audits"]:
        verdict = a.get("verdict") or ("faulty" if a["faulty"] else ("honest" if a["faulty"] is not None else "?"))
        lines.append(f"audit #{a['dispute_id']:<10} {a['stage']:<9} vote {verdict:<6} outcome "
                     f"{a['outcome'] or 'pending'}  {a['note']}")
    return "\n".join(lines)
