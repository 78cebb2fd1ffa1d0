"""Deploy the four contracts to any JSON-RPC node and write the deployment file.

    python -m pollen.deploy --rpc http://127.0.0.1:8546 --out deployments/anvil.json
    python -m pollen.deploy --network gnosis-chiado --rpc https://rpc.chiadochain.net \
        --private-key-file deployer.key --owner 0xYourTimelockOrSafe --out deployments/chiado.json

Parameters come from a per-network preset (`PRESETS`): anvil's are fast for the demo and tests;
Gnosis and Filecoin presets give auditors hours to fetch evidence and weights over IPFS. Outside
a dev chain the deploy refuses demo parameters (windows under an hour, no appeal) and an owner
that is a plain key (an EOA) unless told explicitly (--allow-demo-params / --allow-eoa-owner):
governance should be a timelock or multisig contract. Ownership is two-step (Ownable2Step): the
deployer wires the contracts, then proposes `--owner`, which must call `acceptOwnership()` on
StakeVault, DisputeCourt, PaymentEscrow and AuditFeePayer through its own process.

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
from pollen.evm_compat import check_bytecode
from pollen.networks import NETWORKS, NetworkError, canonical, deployment_file, network

# anvil's / hardhat's first dev account (public knowledge; only ever used on chain 31337).
ANVIL_DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
DEV_CHAIN_IDS = {31337, 1337}
DEPLOYED = ("StakeVault", "ModelVersionRegistry", "ServerRegistry", "DisputeCourt", "PaymentEscrow",
            "AuditFeePayer", "PollenTimelock")
ETHER = 10**18


HOUR, DAY = 3600, 24 * 3600
OPENING_BLOCK_SECONDS = 30  # CourtBounds.OPENING_BLOCK_SECONDS: an opening's reveal may take this per block


@dataclass(frozen=True)
class Parameters:
    """Deployment parameters; the defaults suit a local dev chain and the demo (preset "anvil")."""

    min_stake: int = 1 * ETHER  # minimum active stake per server (wei)
    unbonding_period: int = 2 * DAY  # seconds; must exceed freeze_horizon
    dispute_window: int = DAY  # seconds after issuedAt a receipt can be disputed (judged at commit)
    max_clock_skew: int = 300  # seconds a receipt may be dated in the future
    commit_period: int = 60  # seconds auditors have to commit after the draw
    reveal_period: int = 60  # seconds auditors have to reveal after the commit deadline
    appeal_period: int = 0  # seconds a first ruling can be appealed (0: final at once)
    auditor_min_age: int = 0  # an auditor must have been active this long before the opening
    draw_delay_blocks: int = 2  # blocks between opening and the draw's randomness
    open_reveal_blocks: int = 50  # blocks a committed opening stays revealable
    auditors_per_dispute: int = 3  # K (an appeal draws 2K+1)
    min_panel: int = 3  # fewest drawn auditors that can rule
    slash_bps: int = 5_000  # 50 % of the accused's slashable stake
    finder_bps: int = 2_000  # 20 % of the slash to the challenger
    auditor_bps: int = 2_000  # 20 % of the slash split among coherent auditors
    accused_share_bps: int = 5_000  # 50 % of a lost bond to the wrongly accused
    bond_bps: int = 1_000  # bond = 10 % of what the dispute can slash ...
    min_bond: int = ETHER // 10  # ... and at least this (wei)
    no_reveal_penalty: int = ETHER // 20  # slashed from drawn auditors who never reveal
    incoherence_penalty: int = ETHER // 50  # slashed from auditors who revealed against the ruling

    def court_tuple(self) -> tuple:
        return (self.dispute_window, self.max_clock_skew, self.commit_period, self.reveal_period,
                self.appeal_period, self.auditor_min_age, self.draw_delay_blocks,
                self.open_reveal_blocks, self.auditors_per_dispute, self.min_panel, self.slash_bps,
                self.finder_bps, self.auditor_bps, self.accused_share_bps, self.bond_bps,
                self.min_bond, self.no_reveal_penalty, self.incoherence_penalty)

    @property
    def freeze_horizon(self) -> int:
        """Seconds after a receipt's issuedAt until which a dispute over it can still freeze the
        accused: the window, the clock skew a receipt may be dated ahead, and the longest an
        opening's reveal may take (CourtBounds.freezeHorizon). Unbonding must be longer."""
        return self.dispute_window + self.max_clock_skew + self.open_reveal_blocks * OPENING_BLOCK_SECONDS

    def check_bounds(self) -> None:
        """Refuse parameters the contracts would refuse for the freeze horizon, with the reason."""
        if self.unbonding_period <= self.freeze_horizon:
            raise ChainError(
                f"unbonding_period {self.unbonding_period} s must exceed the freeze horizon {self.freeze_horizon} s "
                f"(dispute_window {self.dispute_window} + max_clock_skew {self.max_clock_skew} + open_reveal_blocks "
                f"{self.open_reveal_blocks} x {OPENING_BLOCK_SECONDS} s): stake unbonding when a receipt is issued "
                "could be withdrawn before a dispute over it freezes the account")

    @property
    def bond(self) -> int:
        """The bond against a server whose scaled bond is under the floor (small stakes)."""
        return self.min_bond

    def demo_grade(self) -> list[str]:
        """Why these parameters only suit a dev chain (empty when they suit a real network)."""
        out = []
        for name in ("commit_period", "reveal_period"):
            if getattr(self, name) < HOUR:
                out.append(f"{name} {getattr(self, name)} s < 1 h (auditors fetching evidence over IPFS miss it)")
        if self.appeal_period < DAY:
            out.append(f"appeal_period {self.appeal_period} s < 1 day")
        if self.auditor_min_age < HOUR:
            out.append(f"auditor_min_age {self.auditor_min_age} s < 1 h (sybils registered at opening can be drawn)")
        return out


def _real(block_s: float, **overrides) -> Parameters:
    """A preset for a public chain with `block_s`-second blocks: windows of hours, not seconds."""
    base = dict(unbonding_period=14 * DAY, dispute_window=3 * DAY, commit_period=6 * HOUR,
                reveal_period=6 * HOUR, appeal_period=2 * DAY, auditor_min_age=DAY,
                draw_delay_blocks=max(2, int(60 / block_s)), open_reveal_blocks=max(10, int(3600 / block_s)),
                auditors_per_dispute=5, min_panel=3)
    base.update(overrides)
    return Parameters(**base)


# Per-network presets. Block times: Gnosis/Chiado 5 s, Filecoin/Calibration 30 s (open_reveal_blocks
# keeps about an hour to reveal an opening; draw_delay_blocks about a minute, at least 2 blocks).
PRESETS: dict[str, Parameters] = {
    "anvil": Parameters(),
    "gnosis-chiado": _real(5, min_stake=ETHER, min_bond=ETHER // 10),
    "gnosis": _real(5, min_stake=100 * ETHER, min_bond=5 * ETHER, no_reveal_penalty=5 * ETHER,
                    incoherence_penalty=2 * ETHER),
    "filecoin-calibration": _real(30, min_stake=ETHER, min_bond=ETHER // 10),
    "filecoin": _real(30, min_stake=100 * ETHER, min_bond=5 * ETHER, no_reveal_penalty=5 * ETHER,
                      incoherence_penalty=2 * ETHER),
}
CHAIN_IDS = {n.name: n.chain_id for n in NETWORKS.values() if not n.dev}


BLOCK_SECONDS = {n.name: n.block_seconds for n in NETWORKS.values()}


def longest_dispute(params: Parameters, block_s: float) -> tuple[int, float]:
    """(blocks, seconds) the longest possible dispute lasts once opened, whatever anyone does:
    two rounds (one without appeals) of (draw delay + the 256-block blockhash window) and
    (commit + reveal), plus the appeal window. Blocks count both parts at `block_s` seconds per block."""
    rounds = 2 if params.appeal_period else 1  # no appeal window: the first ruling is final
    draw_blocks = rounds * (params.draw_delay_blocks + 256)
    timed_s = rounds * (params.commit_period + params.reveal_period) + params.appeal_period
    blocks = draw_blocks + int(timed_s / block_s + 0.999)
    return blocks, draw_blocks * block_s + timed_s


def preset(network: str) -> Parameters:
    """The parameter preset for a network name (dev networks -> "anvil")."""
    if canonical(network) in PRESETS:
        return PRESETS[canonical(network)]
    raise ChainError(f"no parameter preset for network {network!r}: choose one of {', '.join(PRESETS)}")


def check_production(chain_id: int, params: Parameters, owner_is_contract: bool, *,
                     allow_demo_params: bool = False, allow_eoa_owner: bool = False) -> None:
    """Refuse demo parameters or a plain-key owner on a chain that is not a local dev chain."""
    if chain_id in DEV_CHAIN_IDS:
        return
    problems = [] if allow_demo_params else params.demo_grade()
    if not owner_is_contract and not allow_eoa_owner:
        problems.append("the owner is a plain key (EOA): pass --owner <timelock or multisig>, "
                        "or --allow-eoa-owner if you really mean it")
    if problems:
        raise ChainError(f"refusing to deploy to chain {chain_id}: " + "; ".join(problems)
                         + " (--allow-demo-params accepts demo parameters)")


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


def deploy_timelock(w3: Web3, account, delay_s: int, proposer: str, log=print) -> str:
    """Deploy a PollenTimelock: `proposer` schedules, anyone executes after `delay_s`."""
    address = _deploy(w3, account, "PollenTimelock", delay_s, [Web3.to_checksum_address(proposer)],
                      ["0x0000000000000000000000000000000000000000"])
    log(f"  PollenTimelock       {address} (delay {delay_s} s, proposer {proposer})")
    return address


def accept_ownership_batch(deployment: Deployment) -> tuple[list[str], list[int], list[bytes]]:
    """(targets, values, payloads) the timelock's proposer schedules (scheduleBatch) to accept
    ownership of StakeVault, DisputeCourt and (when deployed) PaymentEscrow."""
    selector = Web3.keccak(text="acceptOwnership()")[:4]
    names = [n for n in ("StakeVault", "DisputeCourt", "PaymentEscrow", "AuditFeePayer") if n in deployment.contracts]
    targets = [deployment.contracts[n] for n in names]
    return targets, [0] * len(targets), [selector] * len(targets)


def deploy_all(rpc: str, private_key: str | None = None, params: Parameters | None = None,
               network: str = "anvil", log=print, owner: str | None = None,
               allow_demo_params: bool = False, allow_eoa_owner: bool = False,
               timelock_delay: int | None = None, proposer: str | None = None) -> Deployment:
    """Deploy StakeVault, ModelVersionRegistry, ServerRegistry and DisputeCourt, wire them, and
    propose `owner` (default: the deployer) as governance of the vault and the court. With
    `timelock_delay`, deploy a PollenTimelock whose `proposer` schedules changes and make it
    the proposed owner (its proposer then schedules `accept_ownership_batch`)."""
    w3 = Web3(Web3.HTTPProvider(rpc, request_kwargs={"timeout": 30}))
    try:
        chain_id = w3.eth.chain_id
    except Exception as exc:
        raise RpcUnavailable(rpc, str(exc)) from exc
    network = canonical(network)
    known = NETWORKS.get(network)
    if known is not None and not known.dev and chain_id != known.chain_id:
        raise ChainError(f"the RPC {rpc} serves chain {chain_id}, not {network} (chain {known.chain_id}): "
                         f"check --rpc and --network")
    params = params or preset(network)
    params.check_bounds()
    if private_key is None:
        if chain_id not in DEV_CHAIN_IDS:
            raise ChainError(f"chain {chain_id} is not a local dev chain: pass a deployer key")
        private_key = ANVIL_DEV_KEY
    account = Account.from_key(private_key)
    timelock = None
    if timelock_delay is not None:
        if owner or not proposer:
            raise ChainError("with a timelock pass its --proposer (the multisig that schedules), not --owner")
        timelock = owner = deploy_timelock(w3, account, timelock_delay, proposer, log)
    owner = Web3.to_checksum_address(owner) if owner else account.address
    check_production(chain_id, params, len(w3.eth.get_code(owner)) > 0,
                     allow_demo_params=allow_demo_params, allow_eoa_owner=allow_eoa_owner)
    check_bytecode(network, {n: artifacts.bytecode(n) for n in DEPLOYED})
    start = w3.eth.block_number
    vault = _deploy(w3, account, "StakeVault", params.min_stake, params.unbonding_period, account.address)
    log(f"  StakeVault           {vault}")
    versions = _deploy(w3, account, "ModelVersionRegistry")
    log(f"  ModelVersionRegistry {versions}")
    registry = _deploy(w3, account, "ServerRegistry", vault, versions)
    log(f"  ServerRegistry       {registry}")
    court = _deploy(w3, account, "DisputeCourt", vault, registry, params.court_tuple(), account.address)
    log(f"  DisputeCourt         {court}")
    escrow = _deploy_escrow(w3, account, registry, network, log)
    audit_fees = _deploy_audit_fees(w3, account, court, escrow, log)
    vault_c = w3.eth.contract(address=vault, abi=artifacts.abi("StakeVault"))
    tx = vault_c.functions.wire(court, registry).build_transaction({
        "from": account.address, "nonce": w3.eth.get_transaction_count(account.address, "pending"),
        "chainId": chain_id})
    _send(w3, account, tx, "wire StakeVault")
    if owner != account.address:
        for name, address in (("StakeVault", vault), ("DisputeCourt", court), ("PaymentEscrow", escrow),
                              ("AuditFeePayer", audit_fees)):
            c = w3.eth.contract(address=address, abi=artifacts.abi(name))
            tx = c.functions.transferOwnership(owner).build_transaction({
                "from": account.address, "nonce": w3.eth.get_transaction_count(account.address, "pending"),
                "chainId": chain_id})
            _send(w3, account, tx, f"propose {owner} as owner of {name}")
            log(f"  {name}: {owner} proposed as owner (it must call acceptOwnership())")
    contracts = {"StakeVault": vault, "ModelVersionRegistry": versions, "ServerRegistry": registry,
                 "DisputeCourt": court, "PaymentEscrow": escrow, "AuditFeePayer": audit_fees}
    if timelock:
        contracts["PollenTimelock"] = timelock
        log(f"  next: {proposer} schedules acceptOwnership() on StakeVault, DisputeCourt, PaymentEscrow and AuditFeePayer through the "
            f"timelock (scheduleBatch), and anyone executes it after {timelock_delay} s")
    deployment = Deployment(network=network, chain_id=chain_id, rpc=rpc, deployed_at_block=start,
                            contracts=contracts, parameters={k: v for k, v in vars(params).items()})
    return _with_benchmarks(deployment, private_key, network, log)


def _with_benchmarks(deployment: Deployment, private_key: str, network: str, log) -> Deployment:
    """Add a BenchmarkRegistry (living benchmarks, pollen/benchmarks_onchain.py) where it has a preset."""
    from pollen.benchmarks_onchain import PRESETS as BENCH_PRESETS, deploy_benchmark_registry
    from pollen.chain import Chain

    if network not in BENCH_PRESETS:
        log(f"  BenchmarkRegistry    (no preset for {network}: not deployed)")
        return deployment
    address = deploy_benchmark_registry(Chain.connect(deployment, private_key=private_key), network)
    log(f"  BenchmarkRegistry    {address}")
    deployment.contracts["BenchmarkRegistry"] = address
    return deployment


def _deploy_escrow(w3: Web3, account, registry: str, network: str, log) -> str:
    """PaymentEscrow (pay-per-use, pollen/payments.py) over the registry; reclaim delay by
    network. The deployer owns it until the governance owner accepts (like the vault and court)."""
    from pollen.escrow import RECLAIM_DELAYS, deploy_escrow

    delay = RECLAIM_DELAYS.get(network, max(RECLAIM_DELAYS.values()))
    escrow = deploy_escrow(w3, account, registry, reclaim_delay=delay)
    log(f"  PaymentEscrow        {escrow}")
    return escrow


AUDIT_FEE_WEI = 10**15  # per coherent auditor per resolved dispute, from the escrow's audit pool


def _deploy_audit_fees(w3: Web3, account, court: str, escrow: str, log) -> str:
    """AuditFeePayer over the court and the escrow, named the escrow's audit payer."""
    payer = _deploy(w3, account, "AuditFeePayer", court, escrow, AUDIT_FEE_WEI, account.address)
    c = w3.eth.contract(address=escrow, abi=artifacts.abi("PaymentEscrow"))
    tx = c.functions.setAuditPayer(payer).build_transaction({
        "from": account.address, "nonce": w3.eth.get_transaction_count(account.address, "pending"),
        "chainId": w3.eth.chain_id})
    _send(w3, account, tx, "name the audit payer")
    log(f"  AuditFeePayer        {payer}")
    return payer


@click.command()
@click.option("--rpc", help="JSON-RPC URL (default: the network's public endpoint; anvil: http://127.0.0.1:8546)")
@click.option("--out", type=click.Path(dir_okay=False), help="deployment file to write (default "
              "deployments/<network>.json)")
@click.option("--network", "network_name", default="anvil", show_default=True,
              help=f"network name (parameter preset, chain, name recorded in the file): {', '.join(PRESETS)}")
@click.option("--key-file", "--private-key-file", "private_key_file", type=click.Path(exists=True, dir_okay=False),
              help="file holding the deployer's hex private key (default on dev chains: anvil's first account)")
@click.option("--owner", help="governance address to propose (a timelock or multisig contract)")
@click.option("--timelock-delay", type=click.IntRange(0), help="deploy a PollenTimelock with this delay (s) as owner")
@click.option("--proposer", help="with --timelock-delay: who schedules operations (a multisig)")
@click.option("--allow-demo-params", is_flag=True, help="accept demo parameters outside a dev chain")
@click.option("--allow-eoa-owner", is_flag=True, help="accept a plain-key owner outside a dev chain")
def main(rpc: str | None, out: str | None, network_name: str, private_key_file: str | None, owner: str | None,
         timelock_delay: int | None, proposer: str | None, allow_demo_params: bool, allow_eoa_owner: bool) -> None:
    """Deploy Pollen's contracts and write their addresses to OUT."""
    key = Path(private_key_file).read_text().strip() if private_key_file else None
    try:
        net = network(network_name)
    except NetworkError as exc:
        raise click.BadParameter(str(exc), param_hint="--network") from exc
    network_name = net.name
    rpc = rpc or ("http://127.0.0.1:8546" if net.dev else net.rpc)
    out = out or str(deployment_file(net.name))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    click.echo(f"Deploying Pollen contracts to {rpc} ({network_name} parameters) ...")
    try:
        deployment = deploy_all(rpc, key, network=network_name, log=click.echo, owner=owner,
                                allow_demo_params=allow_demo_params, allow_eoa_owner=allow_eoa_owner,
                                timelock_delay=timelock_delay, proposer=proposer)
    except ChainError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    deployment.save(out)
    click.echo(f"Wrote {out} (chain {deployment.chain_id}, from block {deployment.deployed_at_block})")


if __name__ == "__main__":
    main()
