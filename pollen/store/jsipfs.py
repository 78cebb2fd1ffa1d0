"""Run a real, private, offline IPFS node locally: js-ipfs on Node 22 (from npm, tools/ipfs).

No Kubo binary installs offline here; js-ipfs speaks the same RPC (`add`, `cat`, `pin`, `id`).
`tools/ipfs/ipfs-node.sh` initialises the repo and `exec`s the daemon, so the process started
here *is* the node and is stopped by its PID.
"""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from pollen.store.errors import NodeProcessError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
IPFS_TOOLS = PROJECT_ROOT / "tools" / "ipfs"
NODE_SCRIPT = IPFS_TOOLS / "ipfs-node.sh"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def installed() -> bool:
    return (IPFS_TOOLS / "node_modules" / "ipfs" / "src" / "cli.js").is_file()


@dataclass
class JsIpfsNode:
    """A running js-ipfs daemon; use as a context manager or call stop()."""

    repo: Path
    port: int
    process: subprocess.Popen
    log: Path
    _closed: bool = field(default=False, repr=False)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the node's PID, SIGKILL it if it has not exited after `timeout` seconds."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> "JsIpfsNode":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _answers(url: str) -> bool:
    try:
        return httpx.post(f"{url}/api/v0/id", timeout=0.5).status_code == 200
    except httpx.TransportError:
        return False


def start_node(repo: str | Path, port: int | None = None, timeout: float = 60.0) -> JsIpfsNode:
    """Start a node with its repo at `repo` (initialised if new) on 127.0.0.1:`port`."""
    if not installed():
        raise NodeProcessError(f"js-ipfs is not installed in {IPFS_TOOLS}: run `make ipfs-install`")
    repo, port = Path(repo).resolve(), port or free_port()
    log = repo.with_name(repo.name + ".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(NODE_SCRIPT), str(repo), str(port)], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    node = JsIpfsNode(repo, port, proc, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise NodeProcessError(f"exited with code {proc.returncode} before answering on "
                                   f"port {port}: {log.read_text(errors='replace')[-800:]}")
        if "EADDRINUSE" in log.read_text(errors="replace"):
            node.stop()
            raise NodeProcessError(f"port {port} is already in use (log: {log})")
        if _answers(node.api_url):
            return node
        time.sleep(0.2)
    node.stop()
    raise NodeProcessError(f"no answer on {node.api_url} within {timeout:.0f} s (log: {log})")
