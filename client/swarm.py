"""The client's view of the swarm: membership -> Info of each server -> routes, with bans."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from client.connection import ServerConnection
from client.errors import ClientError, MissingBlocksError
from pollen.membership import MembershipSource, Peer
from pollen.proto import swarm_pb2 as pb
from client.routing import BanList, Hop, NoAllowedRoute, ServerFilter, ServerState, find_route, missing_blocks

log = logging.getLogger("pollen.client")


@dataclass(frozen=True)
class ServerView:
    state: ServerState  # what routing needs
    info: pb.InfoResponse  # the server's own description
    signer: str  # signer address receipts must recover to
    operator: str  # operator receipts must name: the registry's when known, else Info's


class RemoteSwarm:
    def __init__(self, membership: MembershipSource, num_blocks: int, hidden_size: int,
                 info_timeout: float = 5.0, ban_base_s: float = 0.5):
        self.membership = membership
        self.num_blocks = num_blocks
        self.hidden_size = hidden_size
        self.info_timeout = info_timeout
        self.bans = BanList(base=ban_base_s)
        self.connections: dict[str, ServerConnection] = {}
        self.views: dict[str, ServerView] = {}
        self.server_filter = ServerFilter()  # which servers may run which blocks (privacy)

    def connection(self, address: str) -> ServerConnection:
        if address not in self.connections:
            self.connections[address] = ServerConnection(address)
        return self.connections[address]

    def _probe(self, peer: Peer) -> ServerView | None:
        conn = self.connection(peer.address)
        try:
            conn.call("Info", pb.InfoRequest(), self.info_timeout)  # warm the channel
            t0 = time.perf_counter()
            info = conn.call("Info", pb.InfoRequest(), self.info_timeout)
            rtt = time.perf_counter() - t0
        except ClientError as exc:
            log.warning("server %s unreachable: %s", peer.address, exc)
            self.bans.fail(peer.address, time.monotonic())
            return None
        if info.num_blocks != self.num_blocks or info.hidden_size != self.hidden_size:
            log.warning("server %s serves another model (%d blocks, hidden %d)", peer.address,
                        info.num_blocks, info.hidden_size)
            return None
        signer, operator = peer.signer or info.signer, peer.operator or info.operator
        state = ServerState(peer.address, info.start, info.end, info.throughput, rtt, info.load,
                            operator=operator, signer=signer)
        return ServerView(state, info, signer, operator)

    def refresh(self) -> None:
        peers = self.membership.peers()
        with ThreadPoolExecutor(max_workers=min(16, max(1, len(peers)))) as pool:
            views = list(pool.map(self._probe, peers))
        self.views = {v.state.address: v for v in views if v is not None}

    def route(self, start: int = 0, end: int | None = None, exclude=frozenset()) -> list[Hop]:
        """Min-latency hops over usable servers (not in `exclude`, clipped by server_filter);
        refreshes once before giving up."""
        end = self.num_blocks if end is None else end
        for attempt in range(2):
            if attempt or not self.views:
                self.refresh()
            usable = self.server_filter.apply(self.bans.usable(
                [v.state for a, v in self.views.items() if a not in exclude], time.monotonic()))
            hops = find_route(usable, start, end)
            if hops is not None:
                return hops
        excluded = sorted(a for a in self.views if self.bans.banned(a, time.monotonic()))
        if self.server_filter.active:
            raise NoAllowedRoute(missing_blocks(usable, start, end), self.num_blocks, self.server_filter, excluded)
        raise MissingBlocksError(missing_blocks(usable, start, end), self.num_blocks, excluded)

    def fail(self, address: str) -> None:
        until = self.bans.fail(address, time.monotonic())
        log.warning("excluding server %s for %.1fs", address, until - time.monotonic())

    def close(self) -> None:
        for conn in self.connections.values():
            conn.close()
        self.connections.clear()
