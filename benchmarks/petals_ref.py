"""Petals 2.2 as a benchmark reference: 2 block servers and a client, in Petals' own venv.

The venv comes from `benchmarks/petals_env.sh` (`make bench-petals-setup`) and is never a Pollen
dependency: everything here that touches Petals runs in that venv's python as a subprocess.
This file has three roles:

- in Pollen's venv (imported by benchmarks/network.py): `available()`, `prepare_model()` (a copy
  of a model folder whose config.json transformers 4.34 reads, under .cache/petals-models; the
  project's folders are never modified), `Swarm` (starts the servers in their own process groups
  and stops them) and `Client` (a worker speaking benchmarks/inference.py's `gen` / `fwd N`
  protocol, so benchmarks measure both the same way);
- `python benchmarks/petals_ref.py serve ARGS` (in Petals' venv): petals.cli.run_server with
  NAT port mapping, AutoNAT and relays off and no PyPI version check (offline, loopback only);
- `python benchmarks/petals_ref.py client ...` (in Petals' venv): the worker behind `Client`.

Standalone check (loopback, 2 servers, greedy 32 tokens, medians of 3):

    .venv/bin/python benchmarks/petals_ref.py check --model .cache/models/smollm2-135m
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(os.environ.get("PETALS_VENV", ROOT / ".cache" / "petals-venv"))
PY = VENV / "bin" / "python"
STAMP = VENV / ".petals-2.2.0.post1-ready"
MODELS = ROOT / ".cache" / "petals-models"
READY = "PETALS-REF ONLINE"
SETUP_HINT = "make bench-petals-setup (bash benchmarks/petals_env.sh)"


def available() -> bool:
    return STAMP.is_file() and PY.is_file()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- model folder for transformers 4.34 ---------------------------------------------------------
def petals_config(cfg: dict) -> dict:
    """transformers 4.34 wants rope_theta at the top level (transformers 5 nests it)."""
    out = dict(cfg)
    rope = out.get("rope_parameters") or {}
    if "rope_theta" not in out:
        out["rope_theta"] = rope.get("rope_theta", 10000.0)
    if rope.get("rope_type", "default") == "default":
        out.pop("rope_scaling", None)
    out.pop("rope_parameters", None)
    out["torch_dtype"] = "float32"
    out.pop("dtype", None)
    return out


def prepare_model(src: Path, name: str | None = None) -> Path:
    """A folder under .cache/petals-models: converted config.json, the other files linked."""
    src = Path(src).resolve()
    dst = MODELS / (name or src.name)
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.is_file() and f.name != "config.json" and not (dst / f.name).exists():
            (dst / f.name).symlink_to(f)
    cfg = json.loads((src / "config.json").read_text())
    (dst / "config.json").write_text(json.dumps(petals_config(cfg), indent=2))
    return dst


# ---- servers -----------------------------------------------------------------------------------
class Server:
    """One `run_server` in its own session (process group: its handlers and p2pd daemons)."""

    def __init__(self, model: Path, blocks: tuple[int, int], prefix: str, port: int,
                 announce_port: int | None, initial_peer: str | None, threads: int, log: Path):
        cmd = [str(PY), __file__, "serve", str(model), "--dht_prefix", prefix,
               "--block_indices", f"{blocks[0]}:{blocks[1]}", "--throughput", "1.0",
               "--torch_dtype", "float32", "--device", "cpu", "--num_handlers", "8",
               "--host_maddrs", f"/ip4/127.0.0.1/tcp/{port}", "--no_auto_relay",
               "--skip_reachability_check"]
        if announce_port:
            cmd += ["--announce_maddrs", f"/ip4/127.0.0.1/tcp/{announce_port}"]
        cmd += ["--initial_peers", initial_peer] if initial_peer else ["--new_swarm"]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
               "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PETALS_THREADS": str(threads)}
        env.pop("PYTHONPATH", None)
        self.log = log
        self.proc = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True, cwd=ROOT)
        self.peer = ""

    def wait_ready(self, deadline: float) -> None:
        """Wait for the log line that shows its blocks are announced online."""
        while time.monotonic() < deadline:
            text = self.log.read_text(errors="replace")
            if not self.peer and (m := re.search(r"(/ip4/127\.0\.0\.1/tcp/\d+/p2p/\w+)", text)):
                self.peer = m.group(1)
            if self.peer and READY in text:
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"petals server exited ({self.proc.returncode}); log {self.log}")
            time.sleep(0.5)
        raise RuntimeError(f"petals server not ready in time; log {self.log}")

    def stop(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(15)
                time.sleep(0.5)
            except subprocess.TimeoutExpired:
                continue


class Swarm:
    """2+ Petals servers on loopback; `links` puts a netlink proxy in front of each one.

    `proxy(target_port) -> listen_port` starts a proxy (the caller owns it); with one, each server
    announces the proxy's address, so every connection to that server (client, and the previous
    server pushing hidden states) crosses its proxy.
    """

    def __init__(self, model: Path, spans, threads: int = 1, proxy=None, name: str = "bench"):
        self.prefix = f"{name}-{os.getpid()}-{time.monotonic_ns() % 10**6}"
        logs = ROOT / ".cache" / "petals-logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.servers: list[Server] = []
        deadline = time.monotonic() + 300
        try:
            for i, span in enumerate(spans):
                port = free_port()
                announce = proxy(port) if proxy else None
                first = self.servers[0].peer if self.servers else None
                s = Server(model, span, self.prefix, port, announce, first, threads,
                           logs / f"{self.prefix}-{i}.log")
                self.servers.append(s)
                s.wait_ready(deadline)
        except BaseException:
            self.stop()
            raise

    @property
    def initial_peer(self) -> str:
        return self.servers[0].peer

    def stop(self) -> None:
        for s in self.servers:
            s.stop()
        remove_stale_sockets()


def remove_stale_sockets() -> None:
    """Killed handlers leave /tmp/hivemind-*.sock behind: remove those nobody listens on."""
    try:
        listening = subprocess.run(["ss", "-xlH"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return
    for sock in Path("/tmp").glob("hivemind-*.sock"):
        if str(sock) not in listening:
            sock.unlink(missing_ok=True)


# ---- client worker (parent side) ------------------------------------------------------------------
class Client:
    """The Petals client in its own process: `ask("gen")`, `ask("fwd 8")` -> {"s": seconds, ...}."""

    def __init__(self, model: Path, swarm: Swarm, ids: list[int], new_tokens: int, threads: int = 1):
        cmd = [str(PY), __file__, "client", "--path", str(model), "--peer", swarm.initial_peer,
               "--prefix", swarm.prefix, "--ids", ",".join(map(str, ids)),
               "--new-tokens", str(new_tokens), "--threads", str(threads)]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1",
               "TRANSFORMERS_OFFLINE": "1"}
        env.pop("PYTHONPATH", None)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, env=env,
                                     start_new_session=True)
        self._read(300)

    def _read(self, timeout: float = 600) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], deadline - time.monotonic())
            if not ready:
                break
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("petals client died")
            if line.startswith("{"):
                return json.loads(line)
        raise RuntimeError("petals client timed out")

    def ask(self, command: str) -> dict:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(30)
        except (OSError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)


# ---- inside Petals' venv -------------------------------------------------------------------------
def patch_hivemind() -> None:
    """Loopback only: no UPnP/NAT-PMP, AutoNAT or relays, and no PyPI version check."""
    from hivemind.p2p import p2p_daemon

    create = p2p_daemon.P2P.create.__func__

    async def local_create(cls, *args, **kwargs):
        kwargs.update(nat_port_map=False, auto_nat=False, use_relay=False, use_auto_relay=False)
        return await create(cls, *args, **kwargs)

    p2p_daemon.P2P.create = classmethod(local_create)
    import petals.utils.version as version

    version.validate_version = lambda *a, **k: None


def serve(argv: list[str]) -> None:
    patch_hivemind()
    import torch

    torch.set_num_threads(int(os.environ.get("PETALS_THREADS", "1")))
    import petals.cli.run_server as run_server

    run_server.validate_version = lambda *a, **k: None
    from petals.server import server

    announce = server.ModuleAnnouncerThread.announce

    def announce_and_say(self, state):
        announce(self, state)
        if state == server.ServerState.ONLINE:
            print(f"{READY} {self.module_uids[0]}", flush=True)

    server.ModuleAnnouncerThread.announce = announce_and_say
    sys.argv = ["run_server", *argv]
    run_server.main()


def client(args) -> None:
    patch_hivemind()
    import torch
    from petals import AutoDistributedModelForCausalLM

    torch.set_num_threads(args.threads)
    model = AutoDistributedModelForCausalLM.from_pretrained(
        args.path, initial_peers=[args.peer], dht_prefix=args.prefix, torch_dtype=torch.float32)
    vocab = model.config.vocab_size
    ids = torch.tensor([[int(t) for t in args.ids.split(",")]])

    @torch.no_grad()
    def run(cmd):
        if cmd[0] == "gen":
            return model.generate(ids, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
                                  do_sample=False)
        batch = int(cmd[1])
        x = torch.randint(0, vocab, (batch, 128), generator=torch.Generator().manual_seed(batch))
        return model(x).logits

    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        cmd = line.split()
        t0 = time.perf_counter()
        out = run(cmd)
        reply = {"s": time.perf_counter() - t0}
        if cmd[0] == "gen":
            reply["ids"] = out[0].tolist()
        print(json.dumps(reply), flush=True)


# ---- standalone check ---------------------------------------------------------------------------
def check(args) -> None:
    if not available():
        sys.exit(f"Petals venv missing: {SETUP_HINT}")
    cfg = json.loads((Path(args.model) / "config.json").read_text())
    n = cfg["num_hidden_layers"]
    model = prepare_model(Path(args.model))
    swarm = Swarm(model, [(0, n // 2), (n // 2, n)], threads=args.threads)
    try:
        ids = list(range(1, 17))
        c = Client(model, swarm, ids, args.new_tokens, args.threads)
        c.ask("gen")
        times = [c.ask("gen")["s"] for _ in range(args.runs)]
        fwd = [c.ask("fwd 1")["s"] for _ in range(args.runs)]
        c.close()
        print(f"petals 2 servers: decode {args.new_tokens / statistics.median(times):.2f} tok/s, "
              f"forward batch 1 {128 / statistics.median(fwd):.0f} tok/s")
    finally:
        swarm.stop()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        return serve(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("client")
    c.add_argument("--path", required=True)
    c.add_argument("--peer", required=True)
    c.add_argument("--prefix", required=True)
    c.add_argument("--ids", required=True)
    k = sub.add_parser("check")
    k.add_argument("--model", required=True)
    k.add_argument("--runs", type=int, default=3)
    for p in (c, k):
        p.add_argument("--new-tokens", type=int, default=32)
        p.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    client(args) if args.cmd == "client" else check(args)


if __name__ == "__main__":
    main()
