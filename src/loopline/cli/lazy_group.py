"""A command group whose subcommands are imported when they are used.

`loopline topics list` then imports the topics command and what it needs,
not the modules of every other command (PostgreSQL's driver for `cdc`, the
dataset builder, the HTTP stack): the command starts in about half the time.
`--help` lists every command, so it imports them all.

>>> import click
>>> group = LazyGroup("tools", lazy={"echo": "loopline.cli.lazy_group:_example"})
>>> group.list_commands(click.Context(group))
['echo']
>>> group.get_command(click.Context(group), "echo").name
'echo'
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import click

from loopline.cli.errors import LogErrorGroup


class LazyGroup(LogErrorGroup):
    """`LogErrorGroup` with `lazy`: command name -> ``"module:attribute"``, imported on use."""

    def __init__(self, *args: Any, lazy: Mapping[str, str] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy and name not in self.commands:
            module, attribute = self.lazy[name].split(":")
            self.add_command(getattr(importlib.import_module(module), attribute), name)
        return super().get_command(ctx, name)


@click.command("echo")
def _example() -> None:
    """The doctest's command."""
