"""The one exception base of the `client` package; each subclass builds its own message."""

from __future__ import annotations

from pollen.errors import PollenError


class ClientError(PollenError):
    """Base of every error the Pollen client raises on purpose."""


class MissingBlocksError(ClientError):
    def __init__(self, gaps: list[tuple[int, int]], num_blocks: int, excluded: list[str] = ()):
        self.gaps = gaps
        spans = ", ".join(f"[{a}, {b})" for a, b in gaps)
        extra = f" (servers excluded after failures: {', '.join(excluded)})" if excluded else ""
        super().__init__(f"no reachable server covers blocks {spans} of {num_blocks}{extra}")


class ServerFailure(ClientError):
    """A server that died, timed out or misbehaved: the client routes around it."""

    def __init__(self, address: str, detail: str):
        self.address = address
        super().__init__(f"server {address} failed: {detail}")


class RequestRejected(ClientError):
    """A server refused the request itself (bad shape, too long, ...): retrying elsewhere won't help."""

    def __init__(self, address: str, detail: str):
        self.address = address
        super().__init__(f"server {address} rejected the request: {detail}")


class ReceiptRejected(ServerFailure):
    def __init__(self, address: str, problem: str):
        super().__init__(address, f"bad receipt: {problem}")


class SessionClosed(ClientError):
    def __init__(self):
        super().__init__("the inference session is closed")


class SessionTooLong(ClientError):
    def __init__(self, position: int, new: int, max_length: int):
        super().__init__(f"{position} + {new} tokens exceed the session's max_length {max_length}")
