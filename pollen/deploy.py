"""Deploy the four contracts to any JSON-RPC node and write the deployment file.

    python -m pollen.deploy --rpc http://127.0.0.1:8546 --out deployments/anvil.json

On a local dev chain (chain id 31337) the deployer defaults to anvil's first well-known dev
account; anywhere else pass --private-key-file (never a key on the command line of a shared box).
`ape run deploy` (scripts/deploy.py) does the same through Ape's networks and accounts.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import click
from eth_account import Account
from web3 import Web3

from pollen import artifacts
from pollen.chain import ChainError, Deployment, RpcUnavailable

# anvil's / hardhat's first dev account (public knowledge; only ever used on chain 31337).
ANVIL_DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
DEV_CHAIN_IDS = {31337, 1337}
ETHER = 10**18


@dataclass(frozen=True)
class Parameters:
    """Deployment parameters; the defaults suit a local dev chain and the demo."""

    min_stake: int = 1 * ETHER  # minimum active stake per server (wei)
    unbonding_period: int = 2 * 24 * 3600  # seconds; must exceed dispute_window
    dispute_window: int = 24 * 3600  # seconds after issuedAt a receipt can be disputed
    max_clock_skew: int = 300  # seconds a receipt may be dated in the future
    commit_period: int = 60  # seconds to commit after the draw
    reveal_period: int = 60  # seconds to reveal after the commit deadline
    draw_delay_blocks: int = 2  # blocks between opening and the draw's randomness
    auditors_per_dispute: int = 3  # K
    slash_bps: int = 5_000  # 50 % of the accused's slashable stake
    finder_bps: int = 2_000  # 20 % of the slash to the challenger
    auditor_bps: int = 2_000  # 20 % of the slash split among majority auditors
    accused_share_bps: int = 5_000  # 50 % of a lost bond to the wrongly accused
    bond: int = ETHER // 10  # challenger bond (wei)
    no_reveal_penalty: int = ETHER // 20  # slashed from drawn auditors who never reveal

    def court_tuple(self) -> tuple:
        return (self.dispute_window, self.max_clock_skew, self.commit_period, self.reveal_period,
                self.draw_delay_blocks, self.auditors_per_dispute, self.slash_bps,
                self.finder_bps, self.auditor_bps, self.accused_share_bps, self.bond,
                self.no_reveal_penalty)


def _deploy(w3: Web3, account, name: str, *args) -> str:
    contract = w3.eth.contract(abi=artifacts.abi(name), bytecode=artifacts.bytecode(name))
    tx = contract.constructor(*args).build_transaction({
        "from": account.address, "nonce": w3.eth.get_transaction_count(account.address, "pending"),
        "chainId": w3.eth.chain_id})
    receipt = _send(w3, account, tx, f"deploy {name}")
    return receipt["contractAddress"]


def _send(w3: Web3, account, tx: dict, action: str):
    signed = account.sign_transaction(tx)
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction))
    if receipt["status"] != 1:
        raise ChainError(f"{action} failed (tx {receipt['transactionHash'].hex()})")
    return receipt


def deploy_all(rpc: str, private_key: str | None = None, params: Parameters = Parameters(),
               network: str = "anvil", log=print) -> Deployment:
    """Deploy StakeVault, ModelVersionRegistry, ServerRegistry and DisputeCourt, and wire them."""
    w3 = Web3(Web3.HTTPProvider(rpc, request_kwargs={"timeout": 30}))
    try:
        chain_id = w3.eth.chain_id
    except Exception as exc:
        raise RpcUnavailable(rpc, str(exc)) from exc
    if private_key is None:
        if chain_id not in DEV_CHAIN_IDS:
            raise ChainError(f"chain {chain_id} is not a local dev chain: pass a deployer key")
        private_key = ANVIL_DEV_KEY
    account = Account.from_key(private_key)
    start = w3.eth.block_number
    vault = _deploy(w3, account, "StakeVault", params.min_stake, params.unbonding_period, account.address)
    log(f"  StakeVault           {vault}")
    versions = _deploy(w3, account, "ModelVersionRegistry")
    log(f"  ModelVersionRegistry {versions}")
    registry = _deploy(w3, account, "ServerRegistry", vault, versions)
    log(f"  ServerRegistry       {registry}")
    court = _deploy(w3, account, "DisputeCourt", vault, registry, params.court_tuple(), account.address)
    log(f"  DisputeCourt         {court}")
    vault_c = w3.eth.contract(address=vault, abi=artifacts.abi("StakeVault"))
    tx = vault_c.functions.wire(court, registry).build_transaction({
        "from": account.address, "nonce": w3.eth.get_transaction_count(account.address, "pending"),
        "chainId": chain_id})
    _send(w3, account, tx, "wire StakeVault")
    return Deployment(network=network, chain_id=chain_id, rpc=rpc, deployed_at_block=start,
                      contracts={"StakeVault": vault, "ModelVersionRegistry": versions,
                                 "ServerRegistry": registry, "DisputeCourt": court},
                      parameters={k: v for k, v in vars(params).items()})


@click.command()
@click.option("--rpc", default="http://127.0.0.1:8546", show_default=True, help="JSON-RPC URL")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="deployment file to write")
@click.option("--network", default="anvil", show_default=True, help="name recorded in the file")
@click.option("--private-key-file", type=click.Path(exists=True, dir_okay=False),
              help="file holding the deployer's hex private key (default on dev chains: anvil's first account)")
def main(rpc: str, out: str, network: str, private_key_file: str | None) -> None:
    """Deploy Pollen's contracts and write their addresses to OUT."""
    key = Path(private_key_file).read_text().strip() if private_key_file else None
    click.echo(f"Deploying Pollen contracts to {rpc} ...")
    try:
        deployment = deploy_all(rpc, key, network=network, log=click.echo)
    except ChainError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    deployment.save(out)
    click.echo(f"Wrote {out} (chain {deployment.chain_id}, from block {deployment.deployed_at_block})")


if __name__ == "__main__":
    main()
