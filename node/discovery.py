"""Ask the other servers what they serve, to pick this server's span (block selection)."""

from __future__ import annotations

import logging

import grpc

from node.errors import ConfigError
from pollen.membership import MembershipSource
from pollen.proto import swarm_pb2 as pb
from pollen.proto import swarm_pb2_grpc as pb_grpc
from node.selection import Span, choose_start

log = logging.getLogger("pollen.node")


def swarm_spans(membership: MembershipSource, num_blocks: int, timeout: float = 5.0) -> list[Span]:
    """(start, end, throughput) of every reachable server of the same model."""
    spans = []
    for peer in membership.peers():
        with grpc.insecure_channel(peer.address) as channel:
            try:
                info = pb_grpc.BlockServerStub(channel).Info(pb.InfoRequest(), timeout=timeout)
            except grpc.RpcError as err:
                log.warning("peer %s unreachable (%s); ignoring it", peer.address, err.code())
                continue
        if info.num_blocks == num_blocks:
            spans.append((info.start, info.end, info.throughput))
    return spans


def pick_span(membership: MembershipSource, num_blocks: int, length: int) -> tuple[int, int]:
    """The length-`length` span with the weakest coverage in the current swarm."""
    if not 0 < length <= num_blocks:
        raise ConfigError(f"span length {length} not in [1, {num_blocks}]")
    start = choose_start(swarm_spans(membership, num_blocks), num_blocks, length)
    return start, start + length
