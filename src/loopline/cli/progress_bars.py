"""Progress bars of long steps (reading a topic, fitting) on stderr, when it is a terminal.

`ProgressBars` is the ``progress(what, done, total)`` callback the training
functions take; off a terminal `progress_bars` yields None and nothing is drawn.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from loopline.cli.output import is_terminal


class ProgressBars:
    """Rich progress bars on stderr, one per step (reading a topic, fitting), when stderr is a
    terminal; `__call__` is the `progress` callback the training functions take."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self.tasks: dict[str, Any] = {}

    def __call__(self, what: str, done: int, total: int | None) -> None:
        task = self.tasks.get(what)
        if task is None:
            task = self.tasks[what] = self.progress.add_task(what, total=total)
        self.progress.update(task, completed=done, total=total)

    def clear(self) -> None:
        for task in self.tasks.values():
            self.progress.remove_task(task)
        self.tasks.clear()


@contextmanager
def progress_bars() -> Iterator[ProgressBars | None]:
    """Bars on a terminal's stderr for the length of a ``with`` block, else None."""
    if not is_terminal("stderr"):
        yield None
        return
    bars = ProgressBars()
    with bars.progress:
        yield bars
