"""Python bindings for Pollen's contracts, used by the node daemon, the client and scripts.

    chain = Chain.connect(Deployment.load("deployments/anvil.json"), private_key=key)
    chain.stake(chain.min_stake())
    chain.register(signer, "grpc://127.0.0.1:31330", version_id, 0, 15, throughput=40)

ABIs come only from `ape compile`'s output (see pollen.artifacts). Every write is estimated
first (so a revert surfaces before anything is sent, decoded to its custom error name), then
signed locally, sent, and waited for. Private keys are never logged or printed.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from eth_abi import decode as abi_decode
from eth_account import Account
from eth_utils import to_checksum_address
from web3 import Web3
from web3.exceptions import ContractCustomError, ContractLogicError, TimeExhausted
from web3.logs import DISCARD as _DISCARD

from pollen import artifacts
from pollen.disputes import outcome_name, stage_name
from pollen.errors import PollenError
from pollen.receipts import Receipt, ReceiptDomain
from pollen.retry import retry, wait_until


class ChainError(PollenError):
    """A failed chain interaction."""


class ContractReverted(ChainError):
    """A call reverted; `name` is the custom error (e.g. "StakeVault_Frozen") when known."""

    def __init__(self, action: str, name: str, args: tuple = ()):
        self.action, self.name, self.args_ = action, name, args
        shown = ", ".join(str(a) for a in args)
        super().__init__(f"{action} reverted: {name}({shown})")


class DeploymentError(ChainError):
    def __init__(self, path: Path | str, problem: str):
        super().__init__(f"deployment file {path}: {problem} (start a local chain with the "
                         "contracts deployed by `make chain`, or deploy with `python -m pollen.deploy "
                         "--rpc URL --out FILE`)")


class RpcUnavailable(ChainError):
    def __init__(self, rpc: str, detail: str):
        super().__init__(f"cannot reach the chain at {rpc} ({detail}); is the node running?")


@dataclass(frozen=True)
class Deployment:
    """Where the four contracts live on one network (written by the deploy script)."""

    network: str  # e.g. "anvil", "gnosis-chiado"
    chain_id: int
    rpc: str  # default JSON-RPC URL
    deployed_at_block: int  # first block worth scanning for events
    contracts: dict[str, str]  # contract name -> checksummed address
    parameters: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | str) -> "Deployment":
        try:
            data = json.loads(Path(path).read_text())
        except OSError as exc:
            raise DeploymentError(path, f"cannot read ({exc.strerror})") from exc
        except ValueError as exc:
            raise DeploymentError(path, f"not JSON ({exc})") from exc
        missing = [n for n in artifacts.CONTRACT_NAMES if n not in data.get("contracts", {})]
        if missing:
            raise DeploymentError(path, f"missing contract addresses: {', '.join(missing)}")
        try:
            return cls(network=str(data["network"]), chain_id=int(data["chainId"]),
                       rpc=str(data["rpc"]), deployed_at_block=int(data["deployedAtBlock"]),
                       contracts={k: to_checksum_address(v) for k, v in data["contracts"].items()},
                       parameters=dict(data.get("parameters", {})))
        except (KeyError, ValueError, TypeError) as exc:
            raise DeploymentError(path, f"bad field ({exc})") from exc

    def save(self, path: Path | str) -> None:
        data = asdict(self)
        out = {"network": data["network"], "chainId": data["chain_id"], "rpc": data["rpc"],
               "deployedAtBlock": data["deployed_at_block"], "contracts": data["contracts"],
               "parameters": data["parameters"]}
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(out, indent=2) + "\n")


def decode_revert(data: str | bytes | None) -> tuple[str, tuple]:
    """Custom error name and args from revert data, or ("unknown revert", (hex,))."""
    if isinstance(data, str):
        data = bytes.fromhex(data.removeprefix("0x")) if data else b""
    if not data or len(data) < 4:
        return "revert without reason", ()
    known = artifacts.error_selectors()
    if data[:4] in known:
        name, types = known[data[:4]]
        try:
            return name, tuple(abi_decode(types, data[4:]))
        except Exception:  # malformed args: still report the name
            return name, ()
    if data[:4] == bytes.fromhex("08c379a0"):  # Error(string)
        return "Error", tuple(abi_decode(["string"], data[4:]))
    return "unknown revert", ("0x" + data.hex(),)


class Chain:
    """One account's view of a deployment; reads need no key, writes do."""

    def __init__(self, w3: Web3, deployment: Deployment, private_key: str | bytes | None = None):
        self.w3 = w3
        self.deployment = deployment
        self._account = Account.from_key(private_key) if private_key else None
        c = deployment.contracts
        self.vault = w3.eth.contract(address=c["StakeVault"], abi=artifacts.abi("StakeVault"))
        self.registry = w3.eth.contract(address=c["ServerRegistry"], abi=artifacts.abi("ServerRegistry"))
        self.versions = w3.eth.contract(address=c["ModelVersionRegistry"],
                                        abi=artifacts.abi("ModelVersionRegistry"))
        self.court = w3.eth.contract(address=c["DisputeCourt"], abi=artifacts.abi("DisputeCourt"))

    @classmethod
    def connect(cls, deployment: Deployment, private_key: str | bytes | None = None,
                rpc: str | None = None, timeout: float = 30.0) -> "Chain":
        url = rpc or deployment.rpc
        w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": timeout}))
        try:
            chain_id = retry(lambda: w3.eth.chain_id, retry_on=(OSError, ConnectionError),
                             attempts=3)
        except Exception as exc:
            raise RpcUnavailable(url, str(exc)) from exc
        if chain_id != deployment.chain_id:
            raise ChainError(f"{url} is chain {chain_id}, but the deployment is for chain "
                             f"{deployment.chain_id}; pick the matching network")
        return cls(w3, deployment, private_key)

    @property
    def address(self) -> str:
        if self._account is None:
            raise ChainError("this action needs an account: pass a private key / keystore")
        return self._account.address

    @property
    def signing_key(self) -> bytes:
        """This account's private key, for off-chain signatures it makes (payment vouchers)."""
        if self._account is None:
            raise ChainError("this action needs an account: pass a private key / keystore")
        return bytes(self._account.key)

    # ------------------------------------------------------------------ transactions

    def transact(self, fn: Any, action: str, value: int = 0) -> Any:
        """Estimate (surfacing reverts by name), sign, send and wait for one transaction."""
        sender = self.address
        try:
            gas = fn.estimate_gas({"from": sender, "value": value})
        except (ContractCustomError, ContractLogicError) as exc:
            name, args = decode_revert(getattr(exc, "data", None))
            raise ContractReverted(action, name, args) from exc
        tx = fn.build_transaction({
            "from": sender, "value": value, "gas": int(gas * 1.2) + 10_000,
            "nonce": self.w3.eth.get_transaction_count(sender, "pending"),
            "chainId": self.deployment.chain_id,
        })
        signed = self._account.sign_transaction(tx)
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        try:
            receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
        except TimeExhausted as exc:
            raise ChainError(f"{action}: transaction {tx_hash.hex()} not mined after 120 s") from exc
        if receipt["status"] != 1:
            raise ChainError(f"{action}: transaction {tx_hash.hex()} failed on chain")
        return receipt

    def _events(self, contract: Any, event: str, receipt: Any) -> list[Any]:
        return list(getattr(contract.events, event)().process_receipt(receipt, errors=_DISCARD))

    # ------------------------------------------------------------------ StakeVault

    def min_stake(self) -> int:
        return self.vault.functions.minStake().call()

    def stake_of(self, operator: str) -> int:
        return self.vault.functions.stakeOf(operator).call()

    def credits_of(self, account: str) -> int:
        return self.vault.functions.credits(account).call()

    def account_of(self, operator: str) -> dict[str, int]:
        a = _struct(self.vault, "accountOf", self.vault.functions.accountOf(operator).call())
        return {k: a[k] for k in ("staked", "unbonding", "release_at", "frozen_count")}

    def stake(self, amount: int) -> Any:
        return self.transact(self.vault.functions.stake(), "stake", value=amount)

    def request_unstake(self, amount: int) -> Any:
        return self.transact(self.vault.functions.requestUnstake(amount), "requestUnstake")

    def withdraw(self) -> Any:
        return self.transact(self.vault.functions.withdraw(), "withdraw")

    # ------------------------------------------------------------------ ServerRegistry

    def register(self, signer: str, endpoint: str, version_id: int, first: int, last: int,
                 throughput: int) -> Any:
        fn = self.registry.functions.register(signer, endpoint, version_id, first, last, throughput)
        return self.transact(fn, "register")

    def update_server(self, signer: str, endpoint: str, version_id: int, first: int, last: int,
                      throughput: int) -> Any:
        fn = self.registry.functions.update(signer, endpoint, version_id, first, last, throughput)
        return self.transact(fn, "update")

    def leave(self) -> Any:
        return self.transact(self.registry.functions.leave(), "leave")

    def server(self, operator: str) -> dict[str, Any]:
        s = _struct(self.registry, "getServer", self.registry.functions.getServer(operator).call())
        throughput, term_count, status, endpoint = s["throughput"], s["term_count"], s["status"], s["endpoint"]
        signer, first, last, version_id, since, until = self.registry.functions.currentTerm(operator).call()
        return {"operator": to_checksum_address(operator), "status": _STATUS[status],
                "endpoint": endpoint, "throughput": throughput, "signer": signer,
                "version_id": version_id, "first_block": first, "last_block": last,
                "term_count": term_count, "since": since, "until": until,
                "active_since": s["active_since"]}

    def active_servers(self, version_id: int, page: int = 100) -> list[str]:
        count = self.registry.functions.activeCount(version_id).call()
        out: list[str] = []
        for offset in range(0, count, page):
            out += self.registry.functions.activeServers(version_id, offset, page).call()
        return out

    # ------------------------------------------------------------------ ModelVersionRegistry

    def create_model(self, name: str) -> int:
        receipt = self.transact(self.versions.functions.createModel(name), "createModel")
        return self._events(self.versions, "ModelCreated", receipt)[0]["args"]["modelId"]

    def publish_version(self, model_id: int, manifest_cid: str, num_blocks: int,
                        parent_id: int = 0, tolerance_micros: int = 10_000) -> int:
        fn = self.versions.functions.publishVersion(model_id, manifest_cid, num_blocks, parent_id,
                                                    tolerance_micros)
        receipt = self.transact(fn, "publishVersion")
        return self._events(self.versions, "VersionPublished", receipt)[0]["args"]["versionId"]

    def version_by_manifest(self, manifest_cid: str) -> int:
        """Version id already published for a manifest CID, or 0."""
        return self.versions.functions.versionIdByManifestHash(Web3.keccak(text=manifest_cid)).call()

    def deprecate_version(self, version_id: int, superseded_by: int = 0) -> Any:
        return self.transact(self.versions.functions.deprecateVersion(version_id, superseded_by),
                             "deprecateVersion")

    def publish_adapter(self, base_version_id: int, cid: str, name: str, tags: str = "") -> int:
        fn = self.versions.functions.publishAdapter(base_version_id, cid, name, tags)
        receipt = self.transact(fn, "publishAdapter")
        return self._events(self.versions, "AdapterPublished", receipt)[0]["args"]["adapterId"]

    def version(self, version_id: int) -> dict[str, Any]:
        (model_id, parent_id, superseded_by, num_blocks, tolerance, deprecated, publisher,
         cid) = self.versions.functions.getVersion(version_id).call()
        if model_id == 0:
            raise ChainError(f"model version {version_id} does not exist on chain "
                             f"{self.deployment.chain_id}")
        return {"version_id": version_id, "model_id": model_id, "parent_id": parent_id,
                "superseded_by": superseded_by, "num_blocks": num_blocks,
                "tolerance_micros": tolerance, "deprecated": deprecated,
                "publisher": publisher, "manifest_cid": cid}

    # ------------------------------------------------------------------ DisputeCourt

    def receipt_domain(self) -> ReceiptDomain:
        return ReceiptDomain(chain_id=self.deployment.chain_id, court=self.court.address)

    def court_params(self, dispute_id: int | None = None) -> dict[str, int]:
        """The court's current parameters, or those a dispute was opened under (snake_case keys)."""
        if dispute_id is None:
            return _struct(self.court, "params", self.court.functions.params().call())
        return _struct(self.court, "paramsOf", self.court.functions.paramsOf(dispute_id).call())

    def bond_for(self, accused: str) -> int:
        """The bond (wei) a dispute against `accused` requires now (scaled to its stake)."""
        return self.court.functions.bondFor(accused).call()

    def find_term(self, receipt: Receipt, signer: str) -> int | None:
        index = self.registry.functions.findTerm(
            receipt.server, signer, receipt.version_id, receipt.first_block, receipt.last_block,
            receipt.issued_at).call()
        return None if index == 2**256 - 1 else index

    def term(self, operator: str, index: int) -> dict[str, Any] | None:
        """One registry term of an operator (None if it has no such term)."""
        if index >= self.registry.functions.getServer(operator).call()[2]:
            return None
        signer, first, last, version_id, started, ended = self.registry.functions.getTerm(operator, index).call()
        return {"signer": signer, "first_block": first, "last_block": last, "version_id": version_id,
                "started_at": started, "ended_at": ended}

    def current_term(self, operator: str) -> int:
        """Index of the operator's latest registry term (the one new receipts name)."""
        count = self.registry.functions.getServer(operator).call()[2]
        if count == 0:
            raise ChainError(f"{operator} has never registered")
        return count - 1

    def open_dispute(self, receipt: Receipt, signature: bytes, evidence_cid: str, block: int,
                     precheck: bool = True) -> int:
        """Open a dispute over `receipt`, naming the first faulty `block` (global index in the
        receipt's span), posting the court's bond; returns the dispute id. The registry term is
        the receipt's own `term` field: a receipt whose term does not match is refused here."""
        from pollen.receipts import recover_signer

        signer = recover_signer(receipt, self.receipt_domain(), signature)
        if precheck and not self.registry.functions.signedFor(receipt.server, signer, receipt.version_id, receipt.first_block,
                                                 receipt.last_block, receipt.issued_at, receipt.term).call():
            raise ChainError(f"{signer} was not {receipt.server}'s registered signer for blocks "
                             f"[{receipt.first_block}, {receipt.last_block}) of version {receipt.version_id} "
                             f"in term {receipt.term} at {receipt.issued_at}")
        # Commit-reveal: the commitment binds us, the receipt, the evidence and the block, so
        # nobody who sees the reveal in the mempool can copy it; reveal one block later.
        salt = os.urandom(32)
        receipt_hash = self.court.functions.hashReceipt(receipt.as_tuple()).call()
        commitment = self.court.functions.openingCommitment(self.address, receipt_hash, evidence_cid, block,
                                                             salt).call()
        self.transact(self.court.functions.commitOpening(commitment), "commitOpening")
        self._wait_next_block()
        fn = self.court.functions.openDispute(receipt.as_tuple(), signature, evidence_cid, block, salt)
        try:
            receipt_tx = self.transact(fn, "openDispute", value=self.bond_for(receipt.server))
        except ContractReverted as exc:  # the accused staked more meanwhile: pay the new bond once
            if exc.name != "DisputeCourt_BondTooLow":
                raise
            receipt_tx = self.transact(fn, "openDispute", value=self.bond_for(receipt.server))
        return self._events(self.court, "DisputeOpened", receipt_tx)[0]["args"]["disputeId"]

    def _dev_node(self) -> bool:
        """A local dev node (a dev chain id, or anvil posing as a target network's chain id)."""
        if not hasattr(self, "_is_dev"):
            try:
                version = str(self.w3.client_version).lower()
            except Exception:  # noqa: BLE001 - a node without web3_clientVersion is no dev node
                version = ""
            self._is_dev = self.deployment.chain_id in (31337, 1337) or version.startswith("anvil")
        return self._is_dev

    def _wait_next_block(self, timeout_s: float = 120.0) -> None:
        """Return once a block after the latest one is mined (commit-reveal needs two blocks; a
        call or gas estimate runs in the latest block's context). A local dev chain that mines
        only on transactions (anvil's automine) is asked to mine one."""
        start = self.w3.eth.block_number
        if self._dev_node():
            self.w3.provider.make_request("evm_mine", [])
        wait_until(lambda: self.w3.eth.block_number > start, timeout_s, lambda: ChainError(
            f"no new block within {timeout_s:.0f} s after {start}: is the chain producing blocks?"))

    def appeal(self, dispute_id: int, value: int | None = None) -> Any:
        """Appeal a first-round ruling, posting the court's `appealPrice` unless `value`."""
        value = self.court.functions.appealPrice(dispute_id).call() if value is None else value
        return self.transact(self.court.functions.appeal(dispute_id), "appeal", value=value)

    def draw_auditors(self, dispute_id: int) -> list[str]:
        """Draw the current round's panel (empty if the draw lapsed or found too few auditors)."""
        receipt = self.transact(self.court.functions.drawAuditors(dispute_id), "drawAuditors")
        drawn = self._events(self.court, "AuditorsDrawn", receipt)
        return list(drawn[0]["args"]["auditors"]) if drawn else []

    def commitment(self, dispute_id: int, verdict: str, fingerprint: bytes, salt: bytes) -> bytes:
        return self.court.functions.commitmentOf(dispute_id, self.address, VERDICTS[verdict], fingerprint,
                                                 salt).call()

    def commit_vote(self, dispute_id: int, verdict: str, fingerprint: bytes, salt: bytes) -> Any:
        """Commit `verdict` ("faulty" | "honest" | "abstain") bound to the `fingerprint` (32 bytes:
        the hash of what this auditor recomputed)."""
        fn = self.court.functions.commitVote(dispute_id, self.commitment(dispute_id, verdict, fingerprint, salt))
        return self.transact(fn, "commitVote")

    def reveal_vote(self, dispute_id: int, verdict: str, fingerprint: bytes, salt: bytes) -> Any:
        fn = self.court.functions.revealVote(dispute_id, VERDICTS[verdict], fingerprint, salt)
        return self.transact(fn, "revealVote")

    def resolve(self, dispute_id: int) -> str:
        """Push the dispute on: rule the round (-> "appealable" while an appeal window runs) or
        settle it (-> the final outcome)."""
        receipt = self.transact(self.court.functions.resolve(dispute_id), "resolve")
        settled = self._events(self.court, "DisputeResolved", receipt)
        return outcome_name(settled[0]["args"]["outcome"]) if settled else "appealable"

    def dispute(self, dispute_id: int) -> dict[str, Any]:
        out = _struct(self.court, "getDispute", self.court.functions.getDispute(dispute_id).call())
        out["stage"] = stage_name(out["stage"])
        out["outcome"] = outcome_name(out["outcome"])
        out["first_ruling"] = outcome_name(out["first_ruling"])
        out["auditors"] = self.court.functions.auditorsOf(dispute_id).call()
        return out

    # ------------------------------------------------------------------ events

    def events(self, contract: str, event: str, from_block: int | None = None,
               to_block: int | str = "latest", step: int = 5_000) -> Iterator[Any]:
        """Decoded logs of `contract.event` from `from_block` (default: deployment block) on,
        fetched in windows of `step` blocks."""
        target = {"StakeVault": self.vault, "ServerRegistry": self.registry,
                  "ModelVersionRegistry": self.versions, "DisputeCourt": self.court}[contract]
        start = self.deployment.deployed_at_block if from_block is None else from_block
        end = self.w3.eth.block_number if to_block == "latest" else int(to_block)
        event_type = getattr(target.events, event)
        for lo in range(start, end + 1, step):
            hi = min(end, lo + step - 1)
            yield from event_type().get_logs(from_block=lo, to_block=hi)


_STATUS = {0: "none", 1: "active", 2: "inactive", 3: "left"}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _struct(contract, fn_name: str, values) -> dict[str, Any]:
    """A struct returned by `fn_name` as a dict keyed by its ABI component names in snake_case."""
    (fn,) = [e for e in contract.abi if e.get("type") == "function" and e["name"] == fn_name]
    names = [_snake(c["name"]) for c in fn["outputs"][0]["components"]]
    return dict(zip(names, values))
VERDICTS = {"faulty": 1, "honest": 2, "abstain": 3}  # DisputeCourt.revealVote's verdict codes
