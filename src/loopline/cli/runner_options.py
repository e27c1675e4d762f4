"""The options every long-running stage shares on the CLI, declared once.

`loopline features run`, `loopline outcomes run`, `loopline serve --from`
and `loopline train --online` are tasks on the stream runtime; each takes
the same ``--instance``, ``--commit-interval``, ``--until-caught-up`` and
``--metrics-port``/``--metrics-host``, spelled and explained the same way.

>>> import click
>>> from click.testing import CliRunner
>>> @click.command()
... @runner_options()
... def run(options: RunnerOptions) -> None:
...     click.echo(f"{options.instance} {options.commit_interval} {options.until_caught_up}")
>>> CliRunner().invoke(run, ["--instance", "b", "--until-caught-up"]).output
'b 0.5 True\\n'
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from loopline.cli.interrupts import stopping
from loopline.log.collector import quiet_collector

__all__ = ["RunnerOptions", "runner_options"]


@dataclass(frozen=True)
class RunnerOptions:
    """What the shared options said."""

    instance: str = "0"
    commit_interval: float = 0.5
    until_caught_up: bool = False
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"

    def serve_metrics(self) -> None:
        """Serve Prometheus metrics on ``--metrics-port``, if one was given."""
        if self.metrics_port is not None:
            # loopline's own server: prometheus-client's keeps a half-sent request open
            from loopline.cli.http_options import check_port
            from loopline.http.server import start_metrics_server

            check_port(self.metrics_host, self.metrics_port, "--metrics-port")  # one line if busy
            start_metrics_server(self.metrics_port, addr=self.metrics_host)

    def run(self, stage: Any) -> tuple[Any, float]:
        """Run `stage` until Ctrl-C or SIGTERM (or caught up, if asked), then close it.

        Returns its stats and the seconds it ran: what the command prints as its summary.
        A stage holds its state for as long as it runs: while it does, the collector's
        full passes over that state are made rare (`quiet_collector`).
        """
        started = time.monotonic()
        with quiet_collector(), stopping() as stop:
            try:
                stats = stage.run(stop, until_caught_up=self.until_caught_up)
            finally:
                stage.close()
        return stats, time.monotonic() - started


_OPTIONS: dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]] = {
    "instance": click.option(
        "--instance",
        default="0",
        show_default=True,
        help="This member's name in its consumer group; a restarted one must keep its name "
        "(it fences its crashed predecessor). On Kafka, members with different names split "
        "the partitions and take over those of one that stops or dies.",
    ),
    "commit_interval": click.option(
        "--commit-interval",
        default=0.5,
        show_default=True,
        type=click.FloatRange(min=0),
        metavar="SECONDS",
        help="How long an output may wait before it is committed (and readable).",
    ),
    "until_caught_up": click.option(
        "--until-caught-up",
        is_flag=True,
        help="Stop once every record present at the start is processed.",
    ),
    "metrics_port": click.option(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="Serve Prometheus metrics (loopline_stream_* and the stage's own) on "
        "HOST:PORT/metrics.",
    ),
    "metrics_host": click.option(
        "--metrics-host", default="127.0.0.1", show_default=True, help="Address for --metrics-port."
    ),
}


def runner_options(
    *names: str,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add the shared options (all, or those `names`) to a command as one `options` argument."""
    chosen = names or tuple(_OPTIONS)
    unknown = set(chosen) - set(_OPTIONS)
    if unknown:
        raise ValueError(f"no runner option {sorted(unknown)}: known are {sorted(_OPTIONS)}")

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            given = {name: kwargs.pop(name) for name in chosen}
            return command(*args, options=RunnerOptions(**given), **kwargs)

        for name in reversed(chosen):
            wrapper = _OPTIONS[name](wrapper)
        return wrapper

    return decorate
