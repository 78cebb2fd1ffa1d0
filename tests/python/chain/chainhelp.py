"""Helpers for chain tests (a uniquely named module: conftest imports clash across folders)."""

from pollen.chain import Chain


def advance(chain: Chain, seconds: int = 0, blocks: int = 1) -> None:
    if seconds:
        chain.w3.provider.make_request("evm_increaseTime", [seconds])
    chain.w3.provider.make_request("anvil_mine", [blocks])
