"""Serve the built web UI (frontend/dist) for one deployment file.

    pollen ui --deployment deployments/demo.json [--port 5173]
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import click

from pollen.errors import PollenError

ROOT = Path(__file__).resolve().parent.parent
SERVE = ROOT / "frontend" / "scripts" / "serve.mjs"


class UiError(PollenError):
    pass


def start_ui(deployment: str | Path, port: int = 5173, timeout: float = 15.0) -> tuple[subprocess.Popen, str]:
    """Start the UI server process; returns it and the URL it printed."""
    if not (ROOT / "frontend" / "dist" / "index.html").exists():
        raise UiError("the web UI is not built: run `make frontend-build` (make demo does it)")
    proc = subprocess.Popen(["node", str(SERVE), "--deployment", str(deployment), "--port", str(port)],
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
@click.option("--deployment", type=click.Path(exists=True, dir_okay=False), required=True)
@click.option("--port", default=5173, show_default=True)
def main(deployment: str, port: int) -> None:
    """Serve the web UI for DEPLOYMENT until Ctrl-C."""
    try:
        proc, url = start_ui(deployment, port)
    except UiError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"web UI: {url}  (Ctrl-C stops it)")
    try:
        proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
