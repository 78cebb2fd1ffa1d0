"""Start a local trust stack: anvil, the contracts, a published model version, `pollen node`
daemons as separate OS processes (JSON event lines on stdout), and stop all of it.

Used by `python -m demo` and by tests/python/trust. Only processes started here are stopped.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from devstack.anvil import Anvil, dev_keys, free_port, start_anvil
from pollen.chain import Chain, Deployment
from pollen.deploy import Parameters, deploy_all
from pollen.errors import PollenError

ROOT = Path(__file__).resolve().parent.parent


class StackError(PollenError):
    pass


@dataclass
class DaemonProc:
    name: str
    key: str
    args: list[str]
    env: dict
    log_path: Path
    proc: subprocess.Popen | None = None
    events: list[dict] = field(default_factory=list)
    inbox: "queue.Queue[dict]" = field(default_factory=queue.Queue)

    @property
    def operator(self) -> str:
        from eth_account import Account

        return Account.from_key(self.key).address

    def start(self) -> "DaemonProc":
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=log, cwd=ROOT, env=self.env,
                                     text=True, start_new_session=True)
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        return self

    def _read(self, proc) -> None:
        for line in proc.stdout:
            if line.startswith("{"):
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                event["daemon"] = self.name
                self.events.append(event)
                self.inbox.put(event)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_event(self, name: str, timeout: float = 60.0, where=lambda e: True) -> dict:
        """The first event `name` (already seen or upcoming) matching `where`."""
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for e in self.events[seen:]:
                if e["event"] == name and where(e):
                    return e
            seen = len(self.events)
            if not self.alive() and self.inbox.empty():
                time.sleep(0.2)
                if not any(e["event"] == name and where(e) for e in self.events):
                    raise StackError(f"{self.name} exited (code {self.proc.returncode}) before "
                                     f"'{name}'; see {self.log_path}")
            time.sleep(0.05)
        raise StackError(f"{self.name}: no '{name}' event within {timeout:.0f} s; see {self.log_path}")

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.proc.pid, sig)

    def stop(self, timeout: float = 30.0) -> None:
        if not self.alive():
            return
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.proc.wait(10)

    def kill9(self) -> None:
        if self.alive():
            self.signal(signal.SIGKILL)
            self.proc.wait(10)


@dataclass
class Stack:
    workdir: Path
    anvil: Anvil
    deployment: Deployment
    deployment_path: Path
    store_path: Path
    version_id: int
    manifest_cid: str
    keys: list[str]
    daemons: list[DaemonProc] = field(default_factory=list)

    def chain(self, key_index: int | None = None) -> Chain:
        return Chain.connect(self.deployment, private_key=None if key_index is None else self.keys[key_index])

    def daemon(self, name: str, key_index: int, *flags: str, port: int | None = None,
               threads: int = 1) -> DaemonProc:
        """A `pollen node` process definition (not started)."""
        state = self.workdir / "nodes" / name
        state.mkdir(parents=True, exist_ok=True)
        key_file = state / "operator.key"
        key_file.write_text(self.keys[key_index])
        key_file.chmod(0o600)
        args = [sys.executable, "-m", "pollen.cli", "node", "--deployment", str(self.deployment_path),
                "--key-file", str(key_file), "--version-id", str(self.version_id),
                "--store", str(self.store_path), "--cache-dir", str(self.workdir / "cache"),
                "--state-dir", str(state), "--port", str(port or free_port()),
                "--torch-threads", str(threads), "--poll-interval-s", "0.5", *flags]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(ROOT),
               "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
        d = DaemonProc(name, self.keys[key_index], args, env, self.workdir / f"{name}.log")
        self.daemons.append(d)
        return d

    def anvil_rpc(self, method: str, params: list) -> None:
        """Dev-chain only (anvil): move time / mine blocks."""
        self.chain().w3.provider.make_request(method, params)

    def advance_time(self, seconds: int) -> None:
        self.anvil_rpc("evm_increaseTime", [seconds])
        self.anvil_rpc("evm_mine", [])

    def stop(self) -> None:
        for d in self.daemons:
            if d.alive():
                d.signal(signal.SIGTERM)
        for d in self.daemons:
            d.stop(timeout=20)
        self.anvil.stop()


def start_stack(workdir: Path, checkpoint: Path, params: Parameters, tolerance: float,
                block_time: float | None = 1.0, log=lambda *_: None) -> Stack:
    """anvil + contracts + the checkpoint published to an embedded store and registered."""
    from pollen.publish import publish_checkpoint, register_version
    from pollen.store import LocalStore

    workdir.mkdir(parents=True, exist_ok=True)
    anvil = start_anvil(block_time=block_time)
    try:
        deployment = deploy_all(anvil.rpc, params=params, log=log)
        path = workdir / "deployment.json"
        deployment.save(path)
        keys = dev_keys(10)
        store_path = workdir / "store"
        published = publish_checkpoint(checkpoint, LocalStore(store_path), tolerance=tolerance)
        maintainer = Chain.connect(deployment, private_key=keys[0])
        model_id = maintainer.create_model(published.manifest.name)
        version_id = register_version(maintainer, model_id, published)
    except BaseException:
        anvil.stop()
        raise
    return Stack(workdir, anvil, deployment, path, store_path, version_id, published.manifest_cid, keys)
