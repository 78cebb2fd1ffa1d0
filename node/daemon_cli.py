"""`pollen node` (run the operator daemon) and `pollen node status`."""

from __future__ import annotations

import json

import click

from pollen.networks import deployment_options

# flag name -> DaemonConfig field; every flag defaults to None so file/env values survive.
_FLAGS = [
    ("--deployment", str, "deployment file (default deployments/<network>.json, or deployments/demo.json)"),
    ("--rpc", str, "JSON-RPC URL (default: the deployment's)"),
    ("--network", str, "network name: anvil, gnosis-chiado, gnosis, filecoin-calibration, filecoin, or a "
                       "deployment file's name under deployments/"),
    (("--key-file", "--operator-key-file", "operator_key_file"), str,
     "file holding the operator's hex private key (or env POLLEN_OPERATOR_KEY)"),
    ("--keystore", str, "eth-account/Ape keystore JSON (password: env POLLEN_KEYSTORE_PASSWORD)"),
    ("--signer-key-file", str, "hot receipt-signing key file (default: the operator key)"),
    ("--version-id", int, "model version id to serve"),
    ("--blocks", str, "START:END or auto"),
    ("--span-length", int, "with --blocks auto: blocks to serve (0 = all)"),
    ("--host", str, "interface to listen on"),
    ("--port", int, "block server port (0 = free)"),
    ("--public-host", str, "host registered on chain (default: --host)"),
    ("--dtype", click.Choice(["auto", "float32", "bfloat16", "float16"]), "compute dtype (auto: bf16/fp16 on CUDA)"),
    ("--device", str, "auto | cpu | cuda[:N]: where the served blocks compute"),
    ("--torch-threads", int, "torch threads (0 = default)"),
    ("--max-length", int, "longest session (tokens) the server accepts"),
    ("--cache-mb", float, "KV-cache budget for all sessions (MiB)"),
    ("--session-timeout-s", float, "free an idle session's KV cache after this many seconds"),
    ("--max-batch-sessions", int, "decode steps of up to N sessions run as one batch (1 = never batch)"),
    ("--max-batch-wait-ms", float, "a step waits at most this long for other active sessions' steps"),
    ("--store", str, "content store folder or Kubo RPC URL"),
    ("--cache-dir", str, "verified shard cache"),
    ("--state-dir", str, "daemon state folder"),
    ("--stake", float, "stake to hold (native currency; 0 = minimum)"),
    ("--poll-interval-s", float, "chain polling period"),
    ("--restake/--no-restake", None, "after a slash: top up and re-register instead of leaving"),
    ("--leave-on-exit/--stay-on-exit", None, "leave the registry on SIGTERM"),
    ("--unstake-on-exit/--keep-stake-on-exit", None, "request unstake on SIGTERM"),
    ("--follow-successor/--stay-on-version", None, "move to the successor when the version is deprecated"),
    ("--rebalance-interval-s", float, "check coverage this often and move the span if uneven (0 = never)"),
    ("--advertise-throughput", float, "announce this throughput instead of the measured one"),
    ("--price-wei", int, "pay-per-use price: wei per block per token (0 = free)"),
    ("--credit-limit-wei", int, "unpaid wei a payer may owe (0 = one largest step)"),
    ("--free-tier/--paid-only", None, "also serve requests without a payment, after paid work"),
    ("--redeem-interval-s", float, "redeem held vouchers this often"),
    ("--adapters", str, "comma-separated CIDs of published LoRA adapters of this version to serve by name"),
    ("--fault", str, "FAULT INJECTION (tests/demo): a cheat from node/faults.py (skip:B, noise:B:S, quant:int8, ...)"),
    ("--fault-rate", float, "FAULT INJECTION (tests/demo): fraction of steps cheated, still signed"),
    ("--fault-scale", float, "relative size of injected errors"),
    ("--log-level", click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]), "log level"),
]


def _options(f):
    for flag, kind, text in reversed(_FLAGS):
        names = flag if isinstance(flag, tuple) else (flag,)
        f = click.option(*names, type=kind, default=None, help=text)(f) if kind is not None else \
            click.option(*names, default=None, help=text)(f)
    return f


@click.group("node", invoke_without_command=True)
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML or JSON config file")
@_options
@click.pass_context
def node(ctx, config_file, **flags):
    """Run the operator daemon: stake, register, serve a span, answer audits."""
    if ctx.invoked_subcommand is not None:
        return
    from node.daemon import main
    from node.daemon_config import DaemonConfig
    from pollen.errors import PollenError

    try:
        code = main(DaemonConfig.load(config_file, **flags))
    except PollenError as exc:
        raise click.ClickException(str(exc)) from exc
    ctx.exit(code)


@node.command("status")
@deployment_options
@click.option("--operator", default="", help="operator address (default: from --state-dir's state)")
@click.option("--state-dir", default="", help="daemon state folder (default .cache/node/<operator>)")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def status(deployment, operator, state_dir, as_json):
    """Stake, span, sessions served, receipts signed, audits and rewards of one operator."""
    from node.daemon_status import collect, render
    from pollen.errors import PollenError

    try:
        info = collect(deployment, operator, state_dir)
    except PollenError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(info, indent=1, default=str) if as_json else render(info))


def _account_options(f):
    """The operator account a one-shot `pollen node` command signs with (see _operator_chain)."""
    f = click.option("--keystore", default="", help="keystore JSON (password: env POLLEN_KEYSTORE_PASSWORD)")(f)
    f = click.option("--key-file", "--operator-key-file", "operator_key_file", default="",
                     help="operator key file (or env POLLEN_OPERATOR_KEY)")(f)
    f = click.option("--rpc", default="", help="JSON-RPC URL (default: the deployment's)")(f)
    return deployment_options(f)


def _operator_chain(deployment, rpc, operator_key_file, keystore):
    """A Chain signing as the operator (key file, keystore or env, never argv)."""
    from node.daemon_config import DaemonConfig
    from pollen.chain import Chain, Deployment

    cfg = DaemonConfig(deployment=deployment, rpc=rpc, operator_key_file=operator_key_file, keystore=keystore)
    return Chain.connect(Deployment.load(deployment), private_key=cfg.operator_key(), rpc=rpc or None)


@node.command("withdraw")
@_account_options
def withdraw(deployment, rpc, operator_key_file, keystore):
    """Withdraw credited rewards/refunds and matured unbonding stake (pull payment)."""
    from pollen.chain import ContractReverted
    from pollen.errors import PollenError

    try:
        chain = _operator_chain(deployment, rpc, operator_key_file, keystore)
        credits, account = chain.credits_of(chain.address), chain.account_of(chain.address)
        earned = _withdraw_earnings(chain)
        try:
            chain.withdraw()
        except ContractReverted as exc:
            if exc.name != "StakeVault_NothingToWithdraw" or not earned:
                raise
            credits = 0
    except PollenError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"withdrew {credits / 1e18:g} in credits plus matured unbonding stake "
               f"(of {account['unbonding'] / 1e18:g} unbonding) to {chain.address}")
    if earned:
        click.echo(f"withdrew {earned / 1e18:g} earned in PaymentEscrow (service and audit fees)")


def _withdraw_earnings(chain) -> int:
    """Service and audit-fee earnings held in the deployment's PaymentEscrow, withdrawn."""
    from pollen.escrow import Escrow

    address = chain.deployment.contracts.get("PaymentEscrow")
    if not address:
        return 0
    escrow = Escrow(chain, address)
    earned = escrow.earned(chain.address)
    if earned:
        escrow.withdraw()
    return earned


@node.command("evaluate")
@_account_options
@click.option("--store", default=".cache/store", show_default=True, help="content store folder or Kubo RPC URL")
@click.option("--checkpoint", "checkpoints", multiple=True, metavar="MANIFEST_CID=DIR",
              help="a version this operator can evaluate: its manifest CID and a checkpoint folder (repeatable)")
@click.option("--state-dir", default="", help="evaluator state (salts before commits; default .cache/node/<operator>)")
@click.option("--interval-s", default=2.0, show_default=True, help="poll the registry this often")
@click.option("--once", is_flag=True, help="one pass over new requests and draws, then exit")
def evaluate(deployment, rpc, operator_key_file, keystore, store, checkpoints, state_dir, interval_s, once):
    """Answer living-benchmark draws: score drawn evaluations, commit, reveal, finalize (node/evaluator.py)."""
    import time

    from node.evaluator import Evaluator, local_loader
    from pollen.benchmarks_onchain import BenchmarkRegistry
    from pollen.errors import PollenError
    from pollen.store import open_store

    held = {}
    for item in checkpoints:
        cid, sep, folder = item.partition("=")
        if not sep or not cid or not folder:
            raise click.BadParameter(f"{item!r}: expected MANIFEST_CID=DIR", param_hint="--checkpoint")
        held[cid] = folder
    try:
        chain = _operator_chain(deployment, rpc, operator_key_file, keystore)
        content = open_store(store)
        folder = state_dir or f".cache/node/{chain.address}"
        ev = Evaluator(BenchmarkRegistry.of(chain), content, local_loader(held, content),
                       state_path=f"{folder}/evaluator.json", log=click.echo)
        while True:
            for line in ev.step():
                click.echo(line)
            if once:
                return
            time.sleep(interval_s)
    except PollenError as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        click.echo("stopped")
