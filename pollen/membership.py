"""Where the client learns which servers exist: one small interface, a static list for now.

The chain-backed source (ServerRegistry) implements the same interface later.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from pollen.errors import PollenError


class MembershipError(PollenError):
    def __init__(self, problem: str):
        super().__init__(f"membership: {problem}")


@dataclass(frozen=True)
class Peer:
    address: str  # "host:port" of a block server
    signer: str | None = None  # expected receipt signer (from the registry); None = trust Info
    operator: str | None = None  # registered operator receipts must name (registry); None = Info


class MembershipSource(ABC):
    @abstractmethod
    def peers(self) -> list[Peer]:
        """Current servers (may change between calls)."""


class StaticMembership(MembershipSource):
    def __init__(self, peers):
        self._peers = [p if isinstance(p, Peer) else parse_peer(p) for p in peers]
        if not self._peers:
            raise MembershipError("no servers given")

    def peers(self) -> list[Peer]:
        return list(self._peers)


def parse_peer(text: str) -> Peer:
    """"host:port" or "host:port@0xSigner"."""
    address, _, signer = str(text).strip().partition("@")
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise MembershipError(f"bad server address {text!r} (expected host:port)")
    return Peer(address, signer or None)
