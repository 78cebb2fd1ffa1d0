"""Membership from the chain: the active servers of one model version in ServerRegistry.

A full read (activeServers + getServer/currentTerm per operator) on first use, then only
ServerRegistry events since the last block seen: the operators they name are re-read, so a
server that is deactivated, leaves or changes its endpoint/signer/span is picked up at the next
`peers()` call. Inactive servers are never returned. An optional allowlist (only these
operators or endpoints — the seeds' advice for sensitive data) and a denylist (never these)
filter the result; `deny()` adds to the denylist at run time (e.g. a server caught cheating).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from pollen.membership import MembershipError, MembershipSource, Peer

log = logging.getLogger("pollen.membership")

REGISTRY_EVENTS = ("ServerRegistered", "ServerUpdated", "ServerDeactivated", "ServerLeft")


@dataclass(frozen=True)
class ChainServer:
    operator: str
    endpoint: str  # "host:port" (the registry's "grpc://" prefix stripped)
    signer: str
    first_block: int
    last_block: int
    throughput: int


def endpoint_address(endpoint: str) -> str:
    """"grpc://host:port" or "host:port" -> "host:port"; raises MembershipError otherwise."""
    address = endpoint.removeprefix("grpc://")
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536 or "/" in address:
        raise MembershipError(f"registered endpoint {endpoint!r} is not grpc://host:port")
    return address


class ChainMembership(MembershipSource):
    def __init__(self, chain, version_id: int, allow=(), deny=(), min_refresh_s: float = 1.0):
        self.chain, self.version_id = chain, int(version_id)
        self.allow = {a.lower() for a in allow}
        self.denied = {d.lower() for d in deny}
        self.min_refresh_s = min_refresh_s
        self.servers: dict[str, ChainServer] = {}  # operator -> active server
        self._next_block: int | None = None
        self._last_sync = 0.0
        self._lock = threading.Lock()

    # ---- MembershipSource -----------------------------------------------------------------
    def peers(self) -> list[Peer]:
        self.sync()
        return [Peer(s.endpoint, s.signer, s.operator) for s in self.active()]

    def active(self) -> list[ChainServer]:
        """Active servers of the version that pass the allow/deny lists."""
        return [s for s in self.servers.values() if self._allowed(s)]

    def deny(self, who: str) -> None:
        """Never return this operator / endpoint again (e.g. caught cheating)."""
        self.denied.add(who.lower())

    def operator_of(self, address: str) -> str | None:
        for s in self.servers.values():
            if s.endpoint == address:
                return s.operator
        return None

    # ---- sync ---------------------------------------------------------------------------------
    def sync(self, force: bool = False) -> None:
        with self._lock:
            if not force and time.monotonic() - self._last_sync < self.min_refresh_s:
                return
            head = self.chain.w3.eth.block_number
            if self._next_block is None:
                for op in self.chain.active_servers(self.version_id):
                    self._reload(op)
            else:
                for op in self._changed(self._next_block, head):
                    self._reload(op)
            self._next_block, self._last_sync = head + 1, time.monotonic()

    def _changed(self, from_block: int, to_block: int) -> set[str]:
        if from_block > to_block:
            return set()
        ops = set()
        for name in REGISTRY_EVENTS:
            for ev in self.chain.events("ServerRegistry", name, from_block, to_block):
                ops.add(ev["args"]["operator"])
        return ops

    def _reload(self, operator: str) -> None:
        info = self.chain.server(operator)
        if info["status"] != "active" or int(info["version_id"]) != self.version_id:
            self.servers.pop(operator, None)
            return
        try:
            endpoint = endpoint_address(info["endpoint"])
        except MembershipError as exc:
            log.warning("skipping %s: %s", operator, exc)
            self.servers.pop(operator, None)
            return
        self.servers[operator] = ChainServer(operator, endpoint, info["signer"], info["first_block"],
                                             info["last_block"], info["throughput"])

    def _allowed(self, s: ChainServer) -> bool:
        names = {s.operator.lower(), s.endpoint.lower()}
        if names & self.denied:
            return False
        return not self.allow or bool(names & self.allow)
