"""The one exception base of the `node` package; each subclass builds its own message."""

from __future__ import annotations

import grpc

from pollen.errors import PollenError


class NodeError(PollenError):
    """Base of errors the block server reports to a caller. `code` is the gRPC status."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class BadRequest(NodeError):
    """A request whose tensors or fields do not fit this server."""

    def __init__(self, problem: str):
        super().__init__(f"bad request: {problem}")


class SpanMismatch(NodeError):
    def __init__(self, start: int, end: int, served: tuple[int, int]):
        super().__init__(f"blocks [{start}, {end}) are not within this server's span "
                         f"[{served[0]}, {served[1]})")


class SessionLimit(NodeError):
    """Out of KV-cache memory or sessions, or a session past its declared length."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED

    def __init__(self, problem: str):
        super().__init__(f"session limit: {problem}")


class SessionProtocolError(NodeError):
    """Inference-stream messages out of order (no open, open twice, wrong step)."""

    code = grpc.StatusCode.FAILED_PRECONDITION

    def __init__(self, problem: str):
        super().__init__(f"inference stream: {problem}")


class ConfigError(NodeError):
    def __init__(self, problem: str):
        super().__init__(f"server config: {problem}")
