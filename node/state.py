"""The daemon's state on disk: one JSON file, rewritten atomically (temp file, fsync, rename).

    last_block   last chain block whose events were fully handled
    audits       dispute id -> Audit (verdict, salt, stage): a salt is written BEFORE the commit
                 transaction is sent, so a daemon killed anywhere can still reveal after restart;
                 whether a commit/reveal landed is read back from the chain, never re-sent blindly
    stats        counters shown by `pollen node status` (receipts signed, sessions, ...)

A daemon killed at any point and restarted resumes from `last_block` (handlers are idempotent:
they re-read the chain before acting), so it loses no vote and double-sends nothing.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from node.errors import ConfigError

STATE_FILE = "state.json"


def emit(event: str, **fields) -> None:
    """One JSON event line on stdout (what tests, the demo and supervisors read)."""
    print(json.dumps({"event": event, "t": round(time.time(), 3), **fields}), flush=True)


# audit stages, in order
DRAWN, DECIDED, COMMITTED, REVEALED, DONE = "drawn", "decided", "committed", "revealed", "done"


@dataclass
class Audit:
    dispute_id: int
    stage: str = DRAWN
    faulty: bool | None = None  # verdict once decided (True only for "faulty")
    verdict: str = ""  # "faulty" | "honest" | "abstain" once decided
    fingerprint: str = ""  # hex sha256 of what we recomputed, bound into the commitment
    bad_block: int | None = None  # first block we found out of tolerance
    salt: str = ""  # hex, written before the commit is sent
    error: float | None = None  # measured relative error
    note: str = ""  # why (evidence problem, tolerance, ...)
    outcome: str = ""  # court outcome once resolved


@dataclass
class NodeState:
    operator: str = ""
    last_block: int = -1
    audits: dict[str, Audit] = field(default_factory=dict)
    draws: list[int] = field(default_factory=list)  # disputes of our version awaiting their draw
    stats: dict = field(default_factory=dict)
    status: dict = field(default_factory=dict)  # last snapshot for `pollen node status`

    def audit(self, dispute_id: int) -> Audit:
        return self.audits.setdefault(str(dispute_id), Audit(dispute_id))


class StateStore:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / STATE_FILE

    def load(self) -> NodeState:
        if not self.path.exists():
            return NodeState()
        try:
            data = json.loads(self.path.read_text())
            audits = {k: Audit(**v) for k, v in data.pop("audits", {}).items()}
            return NodeState(audits=audits, **data)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"state file {self.path} is corrupt ({exc}); move it away to start "
                              "fresh (votes in flight would be lost)") from exc

    def save(self, state: NodeState) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{STATE_FILE}.{os.getpid()}.tmp")
        with open(tmp, "w") as f:
            json.dump(asdict(state), f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        dir_fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
