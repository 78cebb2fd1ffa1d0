"""Serve the built web UI (frontend/dist) for one deployment file, or every deployment under
deployments/ opened at one network (the page's network picker offers the others). The Swarm
page's "Probe servers live" runs `pollen health` in this Python through the UI server.

    pollen ui --deployment deployments/demo.json [--port 5173]
    pollen ui --network gnosis-chiado            # deployments/*.json, opened at ?network=gnosis-chiado

The UI comes from the source checkout's frontend/ when it is built there, else from the copy an
installed package carries: `make frontend-build` exports the bundle and its server scripts to
pollen/webui/ (package data, git-ignored) with `export()`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import click

from pollen.errors import PollenError

ROOT = Path(__file__).resolve().parent.parent
CHECKOUT_UI = ROOT / "frontend"  # scripts/serve.mjs and dist/ of a source checkout
PACKAGED_UI = Path(__file__).resolve().parent / "webui"  # the same layout, shipped in the wheel
SCRIPTS = ("serve.mjs", "health-endpoint.mjs")  # what the UI server needs beside the bundle
HEALTH_CMD = [sys.executable, "-m", "pollen.cli", "health"]  # what GET /api/health runs


class UiError(PollenError):
    pass


def ui_dir() -> Path:
    """Where the built UI and its server are: the checkout's frontend/, else the packaged copy."""
    for where in (CHECKOUT_UI, PACKAGED_UI):
        if (where / "dist" / "index.html").exists() and (where / "scripts" / "serve.mjs").exists():
            return where
    raise UiError("the web UI is not built: run `make frontend-build` in the checkout (make demo does it); "
                  "an installed package carries it only when its wheel was built after that")


def export(source: Path = CHECKOUT_UI, target: Path = PACKAGED_UI) -> Path:
    """Copy the built bundle and the UI server's scripts to `target` (the packaged copy)."""
    if not (source / "dist" / "index.html").exists():
        raise UiError(f"no built UI in {source / 'dist'}: run `npm run build` in {source} first")
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source / "dist", target / "dist")
    (target / "scripts").mkdir()
    for name in SCRIPTS:
        shutil.copy2(source / "scripts" / name, target / "scripts" / name)
    return target


def start_ui(deployment: str | Path | None, port: int = 5173, timeout: float = 15.0,
             network: str | None = None) -> tuple[subprocess.Popen, str]:
    """Start the UI server process (for `deployment`, or for the deployments folder opened at
    `network`); returns it and the URL it printed."""
    from pollen.networks import canonical, deployments_dir, resolve_deployment

    serve = ui_dir() / "scripts" / "serve.mjs"
    source = ["--deployment", str(deployment)]
    if network:
        resolve_deployment(network)  # the file must exist (a NetworkError names the ones that do)
        source = ["--deployments", str(deployments_dir()), "--network", canonical(network)]
    proc = subprocess.Popen(["node", str(serve), *source, "--port", str(port), "--health-cmd", json.dumps(HEALTH_CMD)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        match = re.search(r"https?://\S+", line)
        if match:
            return proc, match.group(0)
    proc.kill()
    raise UiError(f"the UI server did not start on port {port} (is the port taken?)")


@click.command()
@click.option("--deployment", type=click.Path(exists=True, dir_okay=False), help="one deployment file")
@click.option("--network", help="or every deployments/*.json, opened at this network")
@click.option("--port", default=5173, show_default=True)
def main(deployment: str | None, network: str | None, port: int) -> None:
    """Serve the web UI for a deployment until Ctrl-C."""
    if bool(deployment) == bool(network):
        raise click.UsageError("give --deployment FILE or --network NAME")
    try:
        proc, url = start_ui(deployment, port, network=network)
    except PollenError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"web UI: {url}  (Ctrl-C stops it)")
    try:
        proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
