"""`pollen hunt`: a bounty hunter. Each round it picks a random registered server, runs a fresh
prompt through it as an ordinary inference session (hidden states for that server's span,
step by step), replays the same steps on other servers of the span (client.spotcheck) and
disputes what fails.
Finder's rewards are credited by the court; `--withdraw` collects them at the end.
"""

from __future__ import annotations

import logging
import random

import click
import torch

from client.spotcheck import SpotChecker
from pollen.networks import deployment_options

log = logging.getLogger("pollen.client.hunt")

WORDS = ("the a bee flower honey field summer rain river stone city market song letter garden light "
         "morning winter road friend window paper story table water mountain wind fire").split()


def fresh_ids(model, rng: random.Random) -> torch.Tensor:
    """A new prompt each round (never a fixed list a server could recognise): random words."""
    n = rng.randrange(12, 28)
    tok = model.tokenizer
    if tok is not None:
        return tok(" ".join(rng.choice(WORDS) for _ in range(n)), return_tensors="pt").input_ids
    return torch.tensor([[rng.randrange(int(model.config.vocab_size)) for _ in range(n)]])


def probe_input(model, start: int, rng: random.Random) -> torch.Tensor:
    """Hidden states entering block `start` for a fresh prompt (prefix blocks run by others)."""
    with torch.no_grad():
        x = model.embed(fresh_ids(model, rng))
        if start > 0:
            x, _ = model.runner.forward(x, 0, start)
    return x


def probe(model, checker: SpotChecker, address: str, rng: random.Random):
    """One round against one server, as an ordinary inference session (a prompt chunk, then one
    token per step); returns the CheckResult of replaying it elsewhere."""
    from client.spotcheck import _ReplaySession

    view = model.swarm.views[address]
    start, end = view.state.start, view.state.end
    x = probe_input(model, start, rng)
    prompt = rng.randrange(4, x.shape[1] - 2)
    chunks = [x[:, :prompt]] + [x[:, t:t + 1] for t in range(prompt, x.shape[1])]
    others = set(model.swarm.views) - {address}
    # declared like generate() would: its last sampled token is never sent, so one more
    with _ReplaySession(model.swarm, model.verifier, x.shape[1] + 1, 1, model.compress, start=start, end=end,
                        exclude=others) as session:
        for chunk in chunks:
            session.step(chunk)
    return checker.check_hop(session.hop_logs()[0])


def hunt(model, members, checker: SpotChecker, challenger, rounds: int, rng: random.Random,
         say=print, follow: bool = True) -> list:
    """Run `rounds` probes; returns [(CheckResult, Timeline | None)]."""
    from client.onchain import act_on

    results, probed = [], set()
    for i in range(rounds):
        model.swarm.refresh()
        if not model.swarm.views:
            say("no registered server answers; stopping")
            break
        fresh = sorted(set(model.swarm.views) - probed) or sorted(model.swarm.views)
        address = rng.choice(fresh)  # random order, every server once before any twice
        probed = set() if len(fresh) == 1 else probed | {address}
        result = probe(model, checker, address, rng)
        say(f"round {i + 1}: {address} blocks [{result.span[0]}, {result.span[1]}) -> {result.verdict}"
            + (f" (max error {result.max_error:.3g})" if result.max_error is not None else "")
            + (f": {result.note}" if result.note else ""))
        opened = act_on([result], model, members, challenger)
        timeline = challenger.follow(opened[0]) if opened and follow else (opened[0] if opened else None)
        results.append((result, timeline))
    return results


@click.command("hunt")
@deployment_options
@click.option("--rpc", default="", help="JSON-RPC URL (default: the deployment's)")
@click.option("--key-file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="file holding the hunter's hex private key (pays bonds, receives rewards)")
@click.option("--version-id", required=True, type=int)
@click.option("--rounds", default=10, show_default=True)
@click.option("--store", default=".cache/store", show_default=True, help="content store folder or Kubo URL")
@click.option("--cache-dir", default=".cache/client", show_default=True)
@click.option("--seed", default=None, type=int, help="random seed (default: fresh)")
@click.option("--withdraw", is_flag=True, help="withdraw credited rewards at the end")
@click.option("--tolerance", default=None, type=float, help="override the version's tolerance (stricter hunting)")
def hunt_command(deployment, rpc, key_file, version_id, rounds, store, cache_dir, seed, withdraw, tolerance):
    """Probe random servers with your own prompts and dispute wrong answers."""
    from pathlib import Path

    from client.disputes import Challenger
    from client.onchain import open_model, tolerance_of
    from pollen.chain import Chain, Deployment
    from pollen.errors import PollenError
    from pollen.store import open_store

    logging.basicConfig(level=logging.WARNING)
    try:
        chain = Chain.connect(Deployment.load(deployment), private_key=Path(key_file).read_text().strip(),
                              rpc=rpc or None)
        content = open_store(store)
        model, members = open_model(chain, version_id, content, cache_dir)
        rng = random.Random(seed)
        checker = SpotChecker(model, tolerance or tolerance_of(chain, version_id), 1.0, rng)
        hunt(model, members, checker, Challenger(chain, content, click.echo), rounds, rng, click.echo)
        credits = chain.credits_of(chain.address)
        click.echo(f"credited rewards: {credits / 1e18:g}")
        if withdraw and credits:
            chain.withdraw()
            click.echo("withdrawn")
    except (PollenError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
