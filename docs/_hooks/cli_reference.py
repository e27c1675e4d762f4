"""A MkDocs hook: the CLI reference page, generated from the ``loopline`` click commands.

Each command gets a heading (``loopline topics create``) and exactly what ``loopline topics create --help`` prints, examples
included: the page cannot drift from the commands. (mkdocs-click was tried
first: it drops the examples of each command's epilog, and its table style
printed click 8.3's ``Sentinel.UNSET`` as every default; docs/decisions/0031.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import click

PAGE = "cli.md"
MARKER = "<!-- commands -->"
WIDTH = 80  # what fits the page's code blocks without scrolling


def _commands(
    command: click.Command, ctx: click.Context
) -> Iterator[tuple[click.Context, click.Command]]:
    yield ctx, command
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            yield from _commands(sub, click.Context(sub, info_name=name, parent=ctx))


def reference() -> str:
    """The Markdown of every command's help, depth-first, in the order ``--help`` lists them."""
    from loopline.cli import cli

    root = click.Context(cli, info_name="loopline", max_content_width=WIDTH, terminal_width=WIDTH)
    parts = []
    for ctx, command in _commands(cli, root):
        depth = len(ctx.command_path.split())
        heading = "#" * min(depth + 1, 6)
        parts.append(f"{heading} {ctx.command_path}\n\n```text\n{command.get_help(ctx)}\n```\n")
    return "\n".join(parts)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        raise ValueError(f"docs/{PAGE} lost its marker {MARKER}: put it where the commands go")
    return markdown.replace(MARKER, reference())
