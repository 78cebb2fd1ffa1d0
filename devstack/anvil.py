"""Start and stop a local anvil node (Foundry's dev chain, from npm) on a chosen loopback port."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account

from pollen.errors import PollenError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEV_MNEMONIC = "test test test test test test test test test test test junk"


class AnvilError(PollenError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def anvil_binary() -> str:
    local = PROJECT_ROOT / "node_modules" / ".bin" / "anvil"
    if local.exists():
        return str(local)
    found = shutil.which("anvil")
    if not found:
        raise AnvilError("anvil not found: run `make setup` (installs it from npm)")
    return found


def dev_keys(count: int = 10) -> list[str]:
    """Private keys of anvil's default accounts (derived from its public dev mnemonic)."""
    Account.enable_unaudited_hdwallet_features()
    return ["0x" + Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}").key.hex()
            for i in range(count)]


@dataclass
class Anvil:
    """A running anvil process; use as a context manager or call stop()."""

    port: int
    process: subprocess.Popen

    @property
    def rpc(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> "Anvil":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_anvil(port: int | None = None, accounts: int = 10, block_time: float | None = None,
                timeout: float = 15.0, chain_id: int | None = None, hardfork: str | None = None) -> Anvil:
    """Launch anvil on 127.0.0.1:`port` (a free one if None) and wait until it answers.
    `chain_id` / `hardfork` make it look like a target network (pollen/evm_compat.py)."""
    port = port or free_port()
    cmd = [anvil_binary(), "--host", "127.0.0.1", "--port", str(port), "--accounts",
           str(accounts), "--balance", "10000", "--silent"]
    if block_time:
        cmd += ["--block-time", str(block_time)]
    if chain_id:
        cmd += ["--chain-id", str(chain_id)]
    if hardfork:
        cmd += ["--hardfork", hardfork]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ}, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise AnvilError(f"anvil exited with code {proc.returncode} on port {port}: {err.strip()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return Anvil(port, proc)
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise AnvilError(f"anvil did not open port {port} within {timeout:.0f} s")
