"""A griffe extension: doctest examples in docstrings become fenced ``pycon`` blocks.

loopline's docstrings are plain prose with runnable doctests (``>>>`` lines
and their output, ended by a blank line), checked by
``pytest --doctest-modules``. Rendered as Markdown without this, ``>>>``
would become a nested block quote; with it, each example is a highlighted
Python console block. mkdocs.yml loads this file (it is not a page: the
``_griffe`` folder is excluded from the site).
"""

from __future__ import annotations

from typing import Any

import griffe

_FENCE = "```"


def fence_doctests(text: str) -> str:
    r"""Wrap each run of doctest lines (``>>>`` to the next blank line) in a pycon fence.

    >>> fence_doctests("Add one.\n\n>>> 1 + 1\n2\n\nDone.").splitlines()
    ['Add one.', '', '```pycon', '>>> 1 + 1', '2', '```', '', 'Done.']
    """
    out: list[str] = []
    in_fence = False  # inside a fence the docstring wrote itself
    in_example = False
    for line in text.splitlines():
        stripped = line.strip()
        if in_example:
            if stripped:
                out.append(line)
                continue
            out.append(_FENCE)
            in_example = False
        if stripped.startswith(_FENCE):
            in_fence = not in_fence
        elif not in_fence and stripped.startswith(">>>"):
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}{_FENCE}pycon")
            in_example = True
        out.append(line)
    if in_example:
        out.append(_FENCE)
    return "\n".join(out)


class DoctestBlocks(griffe.Extension):
    """Fence the doctests of every object griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = fence_doctests(obj.docstring.value)
