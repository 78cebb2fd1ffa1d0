"""`pollen` command line: a click group whose subcommands are imported only when used.

Subcommands are the package's `pollen.commands` entry points (pyproject.toml), so this shared
core names no module of `client/` or `node/`: each side registers its own commands.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import click

from pollen.threads import quiet_idle_threads

quiet_idle_threads()  # before any subcommand imports torch (pollen/threads.py)

GROUP = "pollen.commands"


def _commands() -> dict:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(_commands()))

    def get_command(self, ctx, name):
        ep = _commands().get(name)
        if ep is not None:
            return ep.load()
        if not _commands():
            raise click.ClickException(f"no `{GROUP}` entry points found: the pollen package is not installed "
                                       "(run `make setup`, or `pip install -e .` in the checkout)")
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup)
@click.version_option(package_name="pollen", message="pollen %(version)s")
def main():
    """Pollen: run LLMs across a swarm of block servers with signed receipts."""


if __name__ == "__main__":
    main()
