"""`pollen health`: probe every server of a swarm and show what a client would actually get.

The registry says who *should* serve; this asks each server (gRPC Info, timed) and checks its
answer against the registry: span, version, signer, operator and receipt domain. Coverage is
computed from live, consistent servers only, so a gap here is a gap a client would hit.

    pollen health --deployment deployments/demo.json --version-id 1
    pollen health --peers 127.0.0.1:5001,127.0.0.1:5002 [--json]

Exits 1 when some block has no live, consistent server.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import click

from client.connection import ServerConnection
from client.errors import ClientError
from pollen.proto import swarm_pb2 as pb


@dataclass(frozen=True)
class Expected:
    """What the registry (or nothing, for a static peer list) says a server should be."""

    address: str  # host:port
    operator: str = ""
    signer: str = ""
    first_block: int | None = None
    last_block: int | None = None  # exclusive
    version_id: int | None = None
    chain_id: int | None = None
    court: str = ""


@dataclass
class Probe:
    address: str
    operator: str = ""
    span: tuple[int, int] | None = None  # what the server says it serves
    num_blocks: int = 0
    rtt_ms: float | None = None
    throughput: float = 0.0
    load: float = 0.0
    sessions: int = 0
    free_cache_tokens: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return self.rtt_ms is not None and not self.problems


def mismatches(exp: Expected, info: pb.InfoResponse) -> list[str]:
    """Each way the server's own Info disagrees with what the registry says (pure)."""
    out = []
    if exp.first_block is not None and (info.start, info.end) != (exp.first_block, exp.last_block):
        out.append(f"serves [{info.start}, {info.end}) but registered [{exp.first_block}, {exp.last_block})")
    if exp.version_id is not None and info.version_id != str(exp.version_id):
        out.append(f"serves version {info.version_id or '?'} but registered for {exp.version_id}")
    if exp.signer and info.signer.lower() != exp.signer.lower():
        out.append(f"signs as {info.signer} but the registry's signer is {exp.signer}")
    if exp.operator and info.operator.lower() != exp.operator.lower():
        out.append(f"names operator {info.operator} but registered by {exp.operator}")
    if exp.chain_id is not None and info.chain_id != exp.chain_id:
        out.append(f"signs receipts for chain {info.chain_id}, not {exp.chain_id}: the court would reject them")
    if exp.court and info.court.lower() != exp.court.lower():
        out.append(f"signs receipts for court {info.court}, not {exp.court}: the court would reject them")
    return out


def probe(exp: Expected, timeout_s: float = 5.0) -> Probe:
    conn = ServerConnection(exp.address)
    result = Probe(exp.address, exp.operator)
    try:
        conn.call("Info", pb.InfoRequest(), timeout_s)  # connect first, then time a round trip
        t0 = time.perf_counter()
        info = conn.call("Info", pb.InfoRequest(), timeout_s)
        result.rtt_ms = (time.perf_counter() - t0) * 1e3
    except ClientError as exc:
        result.problems.append(f"unreachable: {exc}")
        return result
    finally:
        conn.close()
    result.operator = result.operator or info.operator
    result.span, result.num_blocks = (info.start, info.end), info.num_blocks
    result.throughput, result.load = info.throughput, info.load
    result.sessions, result.free_cache_tokens = info.active_sessions, info.free_cache_tokens
    result.problems += mismatches(exp, info)
    return result


def coverage(probes: list[Probe], num_blocks: int) -> list[tuple[int, int, int]]:
    """[(start, end, live servers)] runs over [0, num_blocks), counting healthy servers only."""
    counts = [0] * num_blocks
    for p in probes:
        if p.healthy and p.span:
            for b in range(max(0, p.span[0]), min(num_blocks, p.span[1])):
                counts[b] += 1
    runs: list[tuple[int, int, int]] = []
    for b, c in enumerate(counts):
        if runs and runs[-1][2] == c:
            runs[-1] = (runs[-1][0], b + 1, c)
        else:
            runs.append((b, b + 1, c))
    return runs


def render(probes: list[Probe], runs: list[tuple[int, int, int]]) -> str:
    lines = [f"{'server':<24} {'operator':<12} {'span':<10} {'rtt ms':>7} {'tok/s':>7} {'load':>5} "
             f"{'sessions':>8}  status"]
    for p in sorted(probes, key=lambda p: (p.span or (1 << 30, 0), p.address)):
        span = f"[{p.span[0]}, {p.span[1]})" if p.span else "-"
        rtt = f"{p.rtt_ms:.1f}" if p.rtt_ms is not None else "-"
        status = "ok" if p.healthy else "; ".join(p.problems)
        lines.append(f"{p.address:<24} {p.operator[:10]:<12} {span:<10} {rtt:>7} {p.throughput:>7.1f} "
                     f"{p.load:>5.2f} {p.sessions:>8}  {status}")
    cover = ", ".join(f"[{a}, {b}) x{c}" for a, b, c in runs)
    gaps = [(a, b) for a, b, c in runs if c == 0]
    lines.append(f"\ncoverage by live, consistent servers: {cover}")
    lines.append("every block is served" if not gaps else
                 "GAPS (no live server): " + ", ".join(f"[{a}, {b})" for a, b in gaps))
    return "\n".join(lines)


def expected_from_chain(deployment: str, version_id: int, rpc: str | None) -> tuple[list[Expected], int]:
    from pollen.chain import Chain, Deployment
    from pollen.chain_membership import ChainMembership

    chain = Chain.connect(Deployment.load(deployment), rpc=rpc)
    members = ChainMembership(chain, version_id)
    members.sync(force=True)
    servers = members.active()
    num_blocks = int(chain.version(version_id)["num_blocks"])
    domain = chain.receipt_domain()
    return [Expected(s.endpoint, s.operator, s.signer, s.first_block, s.last_block, version_id,
                     domain.chain_id, domain.court) for s in servers], num_blocks


@click.command("health")
@click.option("--network", help="network name (reads deployments/<network>.json): probe its registry's servers")
@click.option("--deployment", help="deployment file: probe the servers the registry lists")
@click.option("--version-id", type=int, help="with --network / --deployment: the model version")
@click.option("--rpc", default=None, help="JSON-RPC URL (default: the deployment's)")
@click.option("--peers", default="", help="or a comma-separated host:port list (no registry checks)")
@click.option("--timeout-s", default=5.0, show_default=True, help="per-server Info timeout")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def health(network, deployment, version_id, rpc, peers, timeout_s, as_json):
    """Probe every server of a swarm: reachable, consistent with the registry, and coverage."""
    from pollen.errors import PollenError
    from pollen.networks import resolve_deployment

    try:
        if network:
            deployment = str(resolve_deployment(network, deployment))
        if deployment:
            if version_id is None:
                raise click.UsageError("--network / --deployment need --version-id")
            expected, num_blocks = expected_from_chain(deployment, version_id, rpc)
        elif peers:
            expected, num_blocks = [Expected(a.strip()) for a in peers.split(",") if a.strip()], 0
        else:
            raise click.UsageError("give --network (or --deployment) and --version-id, or --peers")
        with ThreadPoolExecutor(max_workers=max(1, min(16, len(expected)))) as pool:
            probes = list(pool.map(lambda e: probe(e, timeout_s), expected))
    except PollenError as exc:
        raise click.ClickException(str(exc)) from exc
    num_blocks = num_blocks or max((p.num_blocks for p in probes), default=0)
    runs = coverage(probes, num_blocks)
    if as_json:
        click.echo(json.dumps({"servers": [asdict(p) for p in probes], "num_blocks": num_blocks,
                               "coverage": runs}, indent=1))
    else:
        click.echo(render(probes, runs) if expected else "no servers registered for this version")
    if not num_blocks or any(c == 0 for _, _, c in runs):
        raise SystemExit(1)
