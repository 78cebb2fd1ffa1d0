"""`make demo` until the full swarm demo lands: a local anvil with the contracts deployed, the
addresses, and what to try next. Ctrl-C stops the chain.

    .venv/bin/python -m devstack.tour [--port 8546]
"""

from __future__ import annotations

import signal
import time

import click

from devstack.anvil import AnvilError, start_anvil
from pollen.chain import ChainError
from pollen.deploy import deploy_all
from pollen.ui import UiError, start_ui


@click.command()
@click.option("--port", default=8546, show_default=True, help="anvil port (loopback)")
@click.option("--out", default="deployments/demo.json", show_default=True)
@click.option("--ui-port", default=5173, show_default=True, help="web UI port")
@click.option("--exit-after-deploy", is_flag=True, help="stop the chain after printing the tour")
def main(port: int, out: str, ui_port: int, exit_after_deploy: bool) -> None:
    ui = None
    signal.signal(signal.SIGTERM, _interrupt)  # stop children on `kill` too, not only Ctrl-C
    click.echo(f"==> starting anvil on 127.0.0.1:{port}")
    try:
        node = start_anvil(port)
    except AnvilError as exc:
        raise click.ClickException(f"{exc} (another chain on that port? try --port)") from exc
    try:
        click.echo("==> deploying StakeVault, ModelVersionRegistry, ServerRegistry, DisputeCourt")
        deployment = deploy_all(node.rpc, log=click.echo)
        deployment.save(out)
        click.echo(f"==> wrote {out}\n")
        click.echo(TOUR.format(rpc=node.rpc, out=out))
        if exit_after_deploy:
            return
        ui, url = start_ui(out, ui_port)
        click.echo(f"\n==> web UI for this chain: {url}")
        click.echo("anvil and the UI keep running; Ctrl-C stops them.")
        while node.process.poll() is None:
            time.sleep(1)
    except (ChainError, UiError) as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        click.echo("\nstopping anvil and the UI")
    finally:
        if ui is not None:
            ui.terminate()
        node.stop()


def _interrupt(signum, frame):
    raise KeyboardInterrupt


TOUR = """Try, in another terminal (anvil's dev accounts are Ape's TEST::0..9):
  .venv/bin/ape run stake --network {rpc} --account TEST::1 --deployment {out} 1.5
  .venv/bin/ape run publish_version --network {rpc} --account TEST::0 --deployment {out} \\
      --model-name SmolLM2-135M --cid bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku --blocks 30
  .venv/bin/ape run register --network {rpc} --account TEST::1 --deployment {out} \\
      --version 1 --blocks 0:15 --endpoint grpc://127.0.0.1:31330
Python: Chain.connect(Deployment.load("{out}"), private_key=...)  (pollen.chain)"""


if __name__ == "__main__":
    main()
