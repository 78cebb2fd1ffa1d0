"""`pollen` command line: a click group whose subcommands are imported only when used."""

from __future__ import annotations

import importlib

import click

# name -> "module:attribute"; other areas add their subcommands here.
LAZY_COMMANDS = {
    "serve": "node.cli:serve",
    "generate": "client.cli:generate",
    "chat": "client.cli:chat",
    "prepare-smollm2": "pollen.model.cli:prepare_smollm2",
    "node": "node.daemon_cli:node",
    "hunt": "client.hunt:hunt_command",
    "health": "client.health:health",
    "publish": "pollen.publish_cli:publish",
    "ui": "pollen.ui:main",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(LAZY_COMMANDS))

    def get_command(self, ctx, name):
        if name in LAZY_COMMANDS:
            module, attr = LAZY_COMMANDS[name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup)
@click.version_option(package_name="pollen", message="pollen %(version)s")
def main():
    """Pollen: run LLMs across a swarm of block servers with signed receipts."""


if __name__ == "__main__":
    main()
