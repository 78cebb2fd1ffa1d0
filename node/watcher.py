"""Chain event loop: one eth_getLogs per poll over the four contracts, decoded and dispatched in
chain order to thin handlers (one per event), with backoff over RPC errors (pollen.retry).

The cursor (last fully handled block) is persisted by the caller after each window: handlers
must be idempotent (they re-read the chain before acting), since a crash between a handler and
the cursor save replays that window.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

import requests
from eth_utils import event_abi_to_log_topic
from web3.exceptions import Web3Exception

from pollen import artifacts
from pollen.chain import ChainError
from pollen.errors import PollenError
from pollen.retry import retry

log = logging.getLogger("pollen.node.watcher")

# Errors worth retrying: the RPC node hiccuped, not our logic.
TRANSIENT = (OSError, ConnectionError, requests.RequestException, TimeoutError, Web3Exception)

Handler = Callable[[Any], None]


class Watcher:
    def __init__(self, chain, handlers: dict[tuple[str, str], Handler], cursor: Callable[[], int],
                 save_cursor: Callable[[int], None], poll_interval_s: float = 1.0, window: int = 2_000):
        self.chain, self.handlers = chain, handlers
        self.cursor, self.save_cursor = cursor, save_cursor
        self.poll_interval_s, self.window = poll_interval_s, window
        self._topics = self._topic_map()

    def _topic_map(self) -> dict[bytes, tuple[str, Any]]:
        contracts = {"StakeVault": self.chain.vault, "ServerRegistry": self.chain.registry,
                     "ModelVersionRegistry": self.chain.versions, "DisputeCourt": self.chain.court}
        out = {}
        for contract, event in self.handlers:
            abi = next((e for e in artifacts.abi(contract) if e.get("type") == "event"
                        and e["name"] == event), None)
            if abi is None:
                raise ChainError(f"{contract} has no event {event}")
            out[event_abi_to_log_topic(abi)] = ((contract, event), getattr(contracts[contract].events, event)())
        return out

    def poll_once(self) -> int:
        """Handle every subscribed event up to the chain head; returns how many."""
        head = self.chain.w3.eth.block_number
        handled = 0
        while self.cursor() < head:
            lo = self.cursor() + 1
            hi = min(head, lo + self.window - 1)
            for entry in self._logs(lo, hi):
                self.handlers[entry[0]](entry[1])
                handled += 1
            self.save_cursor(hi)
        return handled

    def _logs(self, lo: int, hi: int) -> list[tuple[tuple[str, str], Any]]:
        addresses = [self.chain.vault.address, self.chain.registry.address,
                     self.chain.versions.address, self.chain.court.address]
        raw = self.chain.w3.eth.get_logs({"address": addresses, "fromBlock": lo, "toBlock": hi})
        out = []
        for item in sorted(raw, key=lambda r: (r["blockNumber"], r["logIndex"])):
            topics = item.get("topics") or []
            if topics and bytes(topics[0]) in self._topics:
                key, decoder = self._topics[bytes(topics[0])]
                out.append((key, decoder.process_log(item)))
        return out

    def run(self, stop: threading.Event, tick: Callable[[], None]) -> None:
        """Poll (with backoff on RPC errors) and call `tick()` every interval until `stop`."""
        while not stop.is_set():
            try:
                retry(self.poll_once, retry_on=TRANSIENT, attempts=5, base_delay=0.5, max_delay=10.0,
                      on_retry=lambda n, exc, d: log.warning("chain poll failed (%s); retry %d in %.1fs",
                                                             exc, n, d))
                tick()
            except TRANSIENT as exc:
                log.error("chain unreachable after retries (%s); trying again", exc)
            except PollenError as exc:  # a handler failed: the window is replayed next poll
                log.error("event handling failed (%s); retrying", exc)
            stop.wait(self.poll_interval_s)
