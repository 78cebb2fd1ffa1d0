"""`python -m demo` (`make demo-trust`): the whole trust story on a local dev chain.

anvil -> contracts -> SmolLM2-135M published to the embedded content store and registered ->
four `pollen node` daemons (separate processes; one corrupts its outputs and advertises a huge
throughput to attract traffic) stake, pick spans, register, serve -> the client generates with
streamed output and verified receipts -> the spot check catches the cheater -> evidence to the
store, dispute, auditors drawn, commit, reveal, slash -> the cheater's daemon drops out -> the
client keeps generating on honest servers -> summary. Ctrl-C stops everything it started.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import click

from devstack.procs import ROOT, Stack, start_stack
from pollen.deploy import Parameters
from pollen.ui import UiError, start_ui

NAMES = ["alice", "bob", "carol", "mallory"]  # mallory cheats
# A real chain of spans: the client's route is alice [0, 15) -> mallory [15, 30); bob covers the
# whole model and carol [15, 30), so every hop can be replayed elsewhere and a tie broken.
SPANS = {"alice": "0:15", "bob": "0:30", "carol": "15:30", "mallory": "15:30"}
CHEAT = "skip:27"  # a rational cheater: skip one block of its span, text still plausible
PRICE_WEI = 10**9  # every server charges 1 gwei per block per token (PaymentEscrow vouchers)
LANE_WEI = 10**16  # the client sets aside 0.01 ETH for each server it may use
PROMPTS = ["The honey bee is", "In a quiet village by the sea,"]
from pollen.publish import DEFAULT_TOLERANCE as TOLERANCE  # calibrated: benchmarks/results/judgment.md
T0 = time.time()


def say(text: str) -> None:
    print(f"[{time.time() - T0:6.1f}s] {text}", flush=True)


class EventPrinter:
    """Prints the daemons' JSON events as they arrive (while `live`)."""

    SHOWN = {"drawn": "drawn as auditor for dispute #{dispute_id}",
             "audited": "recomputed dispute #{dispute_id}: {note} -> votes {verdict}",
             "committed": "committed its vote on #{dispute_id}",
             "revealed": "revealed its vote on #{dispute_id}",
             "accused": "accused in dispute #{dispute_id}",
             "slashed": "slashed {amount} ETH",
             "deactivated": "deactivated by the registry (stake under the minimum)",
             "stopped_serving": "stopped serving",
             "leave": "left the registry", "request_unstake": "requested unstake",
             "exit": "daemon exited ({reason})"}

    def __init__(self, stack: Stack):
        self.stack, self.live, self.stop = stack, threading.Event(), threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self.stop.wait(0.2):
            if not self.live.is_set():
                continue
            for d in self.stack.daemons:
                while not d.inbox.empty():
                    e = d.inbox.get()
                    if e["event"] in self.SHOWN:
                        fields = {**e, "verdict": (e.get("verdict") or ("faulty" if e.get("faulty") else "honest")).upper(),
                                  "amount": f"{e.get('amount_wei', 0) / 1e18:g}"}
                        say(f"  {d.name:8} {self.SHOWN[e['event']].format(**fields)}")

    def drain(self) -> None:
        for d in self.stack.daemons:
            while not d.inbox.empty():
                d.inbox.get()


def start_daemons(stack: Stack, threads: int) -> None:
    for i, name in enumerate(NAMES):
        flags = ["--blocks", SPANS[name], "--price-wei", str(PRICE_WEI), "--redeem-interval-s", "2"]
        if name == "mallory":  # the fastest-looking server of [15, 30): the client routes through it
            flags += ["--fault", CHEAT, "--fault-rate", "1.0", "--advertise-throughput", "100000"]
        if name == "alice":
            flags += ["--advertise-throughput", "100000"]
        stack.daemon(name, i + 1, *flags, threads=threads).start()
    for d in stack.daemons:
        ready = d.wait_event("ready", 240)
        staked = next(e for e in d.events if e["event"] in ("staking", "registered"))
        extra = (f"  <- skips block {CHEAT.split(':')[1]} on every step (saves compute), signs anyway"
                 if d.name == "mallory" else "")
        say(f"  {d.name:8} {d.operator} staked {staked.get('amount_wei', 0) / 1e18:g} ETH, "
            f"serves blocks [{ready['blocks'][0]}, {ready['blocks'][1]}) on :{ready['port']}{extra}")


def generate(model, prompt: str, n: int):
    """Stream one greedy generation; returns (session, tokens, seconds)."""
    import torch

    from client.cli import TextStreamer

    tok = model.tokenizer
    ids = tok(prompt, return_tensors="pt").input_ids
    session = model.inference_session(max_length=ids.shape[1] + n)
    print(f"\n    {prompt}", end="", flush=True)
    t = time.perf_counter()
    model.generate(ids, max_new_tokens=n, session=session, streamer=TextStreamer(tok),
                   repetition_penalty=1.2, generator=torch.Generator().manual_seed(0))
    seconds = time.perf_counter() - t
    session.close()
    print("\n", flush=True)
    return session, n, seconds


def describe_route(session, members, names) -> str:
    hops = [f"{names.get(members.operator_of(h.address), h.address)} [{h.start}, {h.end})" for h in session.route]
    return " -> ".join(hops)


def table(before: dict, after: dict) -> list[str]:
    rows = [f"    {'account':10} {'staked':>15} {'unbonding':>15} {'credits':>15}"]
    for name in before:
        b, a = before[name], after[name]
        cells = [f"{b[k]:.3f} -> {a[k]:.3f}" for k in ("staked", "unbonding", "credits")]
        rows.append(f"    {name:10} " + " ".join(f"{c:>15}" for c in cells))
    return rows


def story(stack: Stack, args) -> None:
    from client.disputes import Challenger, balances
    from client.onchain import act_on, open_model, tolerance_of
    from client.spotcheck import SpotChecker
    from pollen.store import LocalStore

    printer = EventPrinter(stack)
    say(f"starting {len(NAMES)} `pollen node` daemons (separate processes)...")
    start_daemons(stack, args.threads)
    printer.drain()
    names = {d.operator: d.name for d in stack.daemons}
    chain = stack.chain(6)
    names[chain.address] = "client"
    store = LocalStore(stack.store_path)
    model, members = open_model(chain, stack.version_id, store, str(stack.workdir / "client"))
    say(f"client {chain.address}: {len(members.peers())} active servers from ServerRegistry, "
        f"receipts checked against DisputeCourt {chain.court.address}")
    fund_and_pay(chain, model, [d.operator for d in stack.daemons])
    accounts = {names[a]: a for a in names}
    endpoints = {s.endpoint: names[s.operator] for s in members.servers.values()}

    def named(text: str) -> str:
        for key, name in [*names.items(), *endpoints.items()]:
            text = text.replace(key, name)
        return text

    before = balances(chain, accounts)
    tolerance = tolerance_of(chain, stack.version_id)
    checker = SpotChecker(model, tolerance, probability=1.0)
    stats = {"tokens": 0, "seconds": 0.0, "receipts": 0}

    def run_session(i: int):
        session, n, secs = generate(model, PROMPTS[i % len(PROMPTS)], args.tokens)
        stats["tokens"] += n
        stats["seconds"] += secs
        stats["receipts"] += len(session.receipts)
        say(f"session {i + 1}: route {describe_route(session, members, names)}; {n} tokens in {secs:.1f}s "
            f"({n / secs:.1f} tokens/s); {len(session.receipts)} receipts verified (signature, hashes, clock)")
        return session

    say("== session 1: generating through the swarm ==")
    session = run_session(0)
    say(f"== spot check (p = 1.0): each hop's steps replayed as an ordinary inference session on other "
        f"servers, compared block by block, per token, tolerance {tolerance:g} ==")
    results = checker.check_session(session)
    for r in results:
        who = names.get(members.operator_of(r.address), r.address)
        note = named(r.note)
        bisected = f"; first wrong: step {r.step}, block {r.block}" if r.block is not None else ""
        say(f"  {who} blocks [{r.span[0]}, {r.span[1]}): {r.verdict}"
            + (f", max per-token error {r.max_error:.3g}" if r.max_error is not None else "") + bisected
            + (f" ({note})" if note else ""))
    printer.live.set()
    challenger = Challenger(chain, store, on_progress=lambda text: say("  court    " + named(text)))
    timelines = act_on(results, model, members, challenger)
    if not timelines:
        say("no cheating found in this session")
    for tl in timelines:
        challenger.follow(tl, timeout_s=240)
    mallory = next(d for d in stack.daemons if d.name == "mallory")
    if timelines:
        mallory.wait_event("exit", 60)
    time.sleep(1.0)
    printer.live.clear()
    say("== session 2: the client routes around the cheater and keeps generating ==")
    run_session(1)
    after = balances(chain, accounts)
    summary(stack, chain, stats, timelines, before, after, names)
    earnings(stack, chain, model.payer, names)
    show_status(stack, "bob")
    model.close()
    printer.stop.set()


def fund_and_pay(chain, model, operators: list[str]) -> None:
    """Deposit and set aside a lane per server in PaymentEscrow; pay every verified step."""
    from client.onchain import payer_for
    from pollen.escrow import Escrow

    escrow = Escrow(chain, chain.deployment.contracts["PaymentEscrow"])
    escrow.allocate({op: LANE_WEI for op in operators}, value=LANE_WEI * len(operators))
    model.use_payer(payer_for(chain))
    say(f"client deposited {LANE_WEI * len(operators) / 1e18:g} ETH in PaymentEscrow ({LANE_WEI / 1e18:g} per "
        f"server); every server charges {PRICE_WEI / 1e9:g} gwei per block per token, paid by vouchers "
        f"only for steps whose receipts verified")


def earnings(stack: Stack, chain, payer, names: dict) -> None:
    """Who paid and who earned: vouchers signed, redeemed on chain, earnings (gwei)."""
    from pollen.escrow import Escrow

    escrow = Escrow(chain, chain.deployment.contracts["PaymentEscrow"])
    time.sleep(3.0)  # the daemons redeem every 2 s
    print("    pay per use (gwei): signed by the client -> redeemed by the server -> earned after the "
          f"{escrow.fee_bps() / 100:g} % protocol fee, plus audit fees (the last step of a session is "
          "paid with the next request)")
    signed = payer.owed()
    for d in stack.daemons:
        redeemed = escrow.contract.functions.redeemed(chain.address, d.operator).call()
        note = ("  <- what cheating earned, against the stake it lost; deactivated, it cannot redeem the rest"
                if d.name == "mallory" else "")
        print(f"    {d.name:10} signed {signed.get(d.operator.lower(), 0) / 1e9:10.0f}  redeemed "
              f"{redeemed / 1e9:10.0f}  earned {escrow.earned(d.operator) / 1e9:10.0f}{note}")
    print(f"    audit pool {escrow.contract.functions.auditPool().call() / 1e9:.0f} gwei "
          "(pays the coherent auditors of each resolved dispute, whatever the verdict)")


def show_status(stack: Stack, name: str) -> None:
    """What an operator sees: `pollen node status` for one daemon (a separate process)."""
    import subprocess

    state = stack.workdir / "nodes" / name
    out = subprocess.run([sys.executable, "-m", "pollen.cli", "node", "status", "--deployment",
                          str(stack.deployment_path), "--state-dir", str(state)],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    say(f"== `pollen node status --state-dir {state.relative_to(ROOT) if state.is_relative_to(ROOT) else state}` ==")
    print("\n".join("    " + line for line in (out.stdout or out.stderr).splitlines()), flush=True)


def summary(stack, chain, stats, timelines, before, after, names) -> None:
    say("== summary ==")
    print(f"    tokens: {stats['tokens']} in {stats['seconds']:.1f}s of generation "
          f"({stats['tokens'] / max(stats['seconds'], 1e-9):.1f} tokens/s on this box), "
          f"{stats['receipts']} receipts verified")
    for tl in timelines:
        d = chain.dispute(tl.dispute_id)
        print(f"    dispute #{tl.dispute_id}: {tl.outcome} on block {d['block']} (step {d['step']}); "
              f"{d['faulty_votes']} faulty / {d['honest_votes']} honest / {d['abstain_votes']} abstained "
              f"votes; chain blocks {tl.opened_block} -> {tl.events[-1][1]} ({tl.events[-1][1] - tl.opened_block} blocks, "
              f"{tl.events[-1][0]:.1f}s)")
        for secs, block, what in tl.events:
            for addr, name in names.items():
                what = what.replace(addr, name)
            print(f"      +{secs:5.1f}s  block {block:4}  {what}")
    print("    balances (ETH) before -> after:")
    print("\n".join(table(before, after)))
    for name, addr in ((n, a) for a, n in names.items()):
        print(f"    {name:10} registry status: {chain.server(addr)['status'] if name != 'client' else '-'}")
    print("    (local dev chain: anvil mines a block every second; nothing here touches a public network)")


@click.command()
@click.option("--tokens", default=24, show_default=True, help="tokens per session")
@click.option("--threads", default=1, show_default=True, help="torch threads per daemon")
@click.option("--workdir", default=".cache/demo", show_default=True)
@click.option("--model", "model_path", default=".cache/models/smollm2-135m", show_default=True)
@click.option("--ui-port", default=5173, show_default=True, help="web UI port (0: no UI)")
@click.option("--keep/--no-keep", default=None,
              help="keep the chain and UI up after the story until Enter (default: when interactive)")
def main(tokens, threads, workdir, model_path, ui_port, keep):
    """The Pollen trust demo on a local anvil chain."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    quiet_libraries()
    workdir = (ROOT / workdir).resolve()
    if not (Path(model_path) / "model.safetensors").exists():
        raise click.ClickException(f"{model_path} missing: run `make prepare-smollm2` first")
    shutil.rmtree(workdir / "nodes", ignore_errors=True)  # state of a previous chain is meaningless
    signal.signal(signal.SIGTERM, _interrupt)
    say("Pollen trust demo -- local dev chain (anvil), embedded content store, real processes over loopback")
    params = Parameters(draw_delay_blocks=1)
    stack = start_stack(workdir, Path(model_path), params, TOLERANCE, log=lambda line: say("  " + line.strip()))
    ui = None
    try:
        say(f"anvil at {stack.anvil.rpc}; SmolLM2-135M published: manifest {stack.manifest_cid}, "
            f"version #{stack.version_id} on chain (tolerance {TOLERANCE:g} max relative L2)")
        ui, url = serve_ui(stack.deployment_path, ui_port)
        story(stack, _Args(tokens, threads))
        if keep if keep is not None else sys.stdin.isatty():
            say(f"the chain and the web UI ({url}) stay up for exploring: press Enter to stop")
            input()
    except (KeyboardInterrupt, EOFError):
        say("interrupted")
    finally:
        say("stopping daemons (they leave and request unstake), the UI and anvil...")
        if ui is not None:
            ui.terminate()
        stack.stop()
        say(f"done in {time.time() - T0:.0f}s")


def serve_ui(deployment_path: Path, port: int):
    """Serve the web UI for the demo's chain (if built); returns (process or None, url)."""
    if not port:
        return None, "(disabled)"
    try:
        proc, url = start_ui(deployment_path, port)
    except UiError as exc:
        say(f"web UI not served: {exc}")
        return None, "(not served)"
    say(f"web UI for this chain: {url}  (watch the dispute appear in the Disputes tab)")
    return proc, url


def _interrupt(*_):
    raise KeyboardInterrupt


def quiet_libraries() -> None:
    """The story prints its own progress; library warnings (ban notices, tokenizer hints) would
    interleave with the streamed text."""
    import logging

    logging.getLogger("pollen").setLevel(logging.ERROR)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()


class _Args:
    def __init__(self, tokens, threads):
        self.tokens, self.threads = tokens, threads


if __name__ == "__main__":
    sys.exit(main())
