"""Errors of the content store. Each subclass builds its own message from what went wrong."""

from __future__ import annotations

from pollen.errors import PollenError


class StoreError(PollenError):
    """Base of every content-store error (bad CID, bad bytes, missing content, node down)."""


class CidError(StoreError):
    """A string that is not a CID Pollen can verify."""

    def __init__(self, text: object, problem: str):
        self.text = text
        super().__init__(f"malformed CID {text!r}: {problem}")


class ContentMismatchError(StoreError):
    """Bytes that do not hash to the CID they were fetched or stored under."""

    def __init__(self, cid: str, actual: str, where: str):
        self.cid, self.actual = cid, actual
        super().__init__(f"content from {where} does not match CID {cid}: the bytes hash to {actual}")


class ContentNotFoundError(StoreError):
    """A CID the store does not hold (or the node could not find)."""

    def __init__(self, cid: str, where: str, detail: str = ""):
        self.cid = cid
        extra = f" ({detail})" if detail else ""
        super().__init__(f"CID {cid} not found in {where}{extra}")


class StoreUnavailableError(StoreError):
    """The IPFS node cannot be reached or answered with an error."""

    def __init__(self, url: str, detail: str):
        self.url = url
        super().__init__(f"IPFS node at {url} is unavailable: {detail}")


class NodeProcessError(StoreError):
    """The local js-ipfs node could not be installed, initialised or started."""

    def __init__(self, problem: str):
        super().__init__(f"local IPFS node: {problem}")


class CidDisagreementError(StoreError):
    """A backend stored bytes under a different CID than Pollen computed for them."""

    def __init__(self, where: str, expected: str, got: object, hint: str = ""):
        self.expected, self.got = expected, got
        tail = f": {hint}" if hint else ""
        super().__init__(f"{where} stored content as {got}, not {expected}{tail}")


class NodeAnswerError(StoreError):
    """The IPFS node answered, but with an error or an unreadable reply."""

    def __init__(self, url: str, problem: str):
        self.url = url
        super().__init__(f"IPFS node at {url}: {problem}")


class StorePathError(StoreError):
    """A local path the store cannot use (missing file, uncreatable folder)."""

    def __init__(self, path: object, problem: str):
        self.path = path
        super().__init__(f"{path}: {problem}")
