"""Which post-Paris opcodes each target network runs, and whether our bytecode fits it.

The contracts compile for `prague` (ape-config.yaml). Of what that can emit, our runtime code
uses PUSH0, MCOPY, TLOAD/TSTORE (StakeVault's transient reentrancy guard) and BLOCKHASH (the
court's draw). Where each target got them:

  Gnosis / Chiado   Shanghai (PUSH0), Dencun (MCOPY, TLOAD/TSTORE, BLOBHASH, BLOBBASEFEE) and
                    Pectra are live on both, so the Ethereum set applies.
  Filecoin / Calib. FEVM runs Paris + PUSH0 (FIP-0054), MCOPY since FIP-0094, TLOAD/TSTORE
                    since FIP-0097; no blobs (BLOBHASH, BLOBBASEFEE). BLOCKHASH returns tipset
                    hashes for recent epochs, and an epoch may be a null round: a draw whose
                    block has no hash lapses (the court's rule), which costs the challenger a
                    re-open, never a wrong panel.

`check_bytecode(network, {name: runtime_hex})` raises EvmCompatError naming the contract and
the opcode before a deploy could fail on chain; anvil runs each target's chain id with the
closest hardfork (`ANVIL_HARDFORK`) for the contract tests (tests/python/chain/test_target_networks.py).
"""

from __future__ import annotations

from pollen.errors import PollenError

POST_PARIS = {0x5F: "PUSH0", 0x5E: "MCOPY", 0x5C: "TLOAD", 0x5D: "TSTORE", 0x49: "BLOBHASH",
              0x4A: "BLOBBASEFEE"}
_ETHEREUM = set(POST_PARIS.values())
_FEVM = {"PUSH0", "MCOPY", "TLOAD", "TSTORE"}
SUPPORTED = {"anvil": _ETHEREUM, "gnosis-chiado": _ETHEREUM, "gnosis": _ETHEREUM,
             "filecoin-calibration": _FEVM, "filecoin": _FEVM}
# anvil's hardfork closest to each target (anvil has no FEVM: cancun, minus what the check refuses)
ANVIL_HARDFORK = {"anvil": "prague", "gnosis-chiado": "prague", "gnosis": "prague",
                  "filecoin-calibration": "cancun", "filecoin": "cancun"}


class EvmCompatError(PollenError):
    pass


def post_paris_opcodes(runtime_hex: str) -> set[str]:
    """Post-Paris opcodes in runtime bytecode (PUSH data and the trailing CBOR metadata skipped)."""
    code = bytes.fromhex(runtime_hex.removeprefix("0x"))
    if len(code) >= 2:
        meta = int.from_bytes(code[-2:], "big")
        if meta + 2 <= len(code):
            code = code[:-(meta + 2)]
    found, i = set(), 0
    while i < len(code):
        op = code[i]
        if op in POST_PARIS:
            found.add(POST_PARIS[op])
        i += 1 + (op - 0x5F if 0x60 <= op <= 0x7F else 0)
    return found


def check_bytecode(network: str, runtimes: dict[str, str]) -> None:
    """Raise EvmCompatError if a contract uses an opcode `network` does not run."""
    if network not in SUPPORTED:
        raise EvmCompatError(f"unknown network {network!r}: one of {', '.join(SUPPORTED)}")
    for name, runtime in runtimes.items():
        missing = post_paris_opcodes(runtime) - SUPPORTED[network]
        if missing:
            raise EvmCompatError(
                f"{name} uses {', '.join(sorted(missing))}, which {network} does not run: compile "
                f"for an older evm_version in ape-config.yaml (and drop what needs it) before deploying there")
