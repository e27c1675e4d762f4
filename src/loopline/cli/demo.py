"""``loopline demo``: the whole loop on a simulated professional network, in one command."""

from __future__ import annotations

import logging
import tempfile

import click

from loopline.cli.errors import CLIError
from loopline.cli.output import is_terminal
from loopline.cli.settings import LogSettings


@click.command(
    epilog="""\b
Examples:
  loopline demo
  loopline demo --duration 60
  loopline demo --log kafka://localhost:9092""",
)
@click.option(
    "--duration",
    default=150.0,
    show_default=True,
    type=click.FloatRange(min=10),
    metavar="SECONDS",
    help="How long the simulated business runs.",
)
@click.option(
    "--log",
    "log_url",
    metavar="URL",
    help="Run on this log (e.g. kafka://localhost:9092); default: an embedded log in a "
    "temporary directory, removed at the end.",
)
@click.option("--seed", default=7, show_default=True, type=int, help="The simulation's seed.")
@click.option(
    "--rate",
    default=25.0,
    show_default=True,
    type=click.FloatRange(min=1),
    help="Ranking requests per second from the simulated application.",
)
@click.option("--no-live", is_flag=True, help="Print a line every 10 s instead of a live view.")
@click.pass_obj
def demo(
    settings: LogSettings, duration: float, log_url: str | None, seed: int, rate: float,
    no_live: bool,
) -> None:  # fmt: skip
    """Run the whole loop on a simulated "people you may know" network.

    Members with profiles (a table topic) and activity (views, searches); the
    application asks the prediction service to rank suggested connections;
    simulated members accept with a probability that depends on hidden true
    factors; outcomes are joined to decisions into labelled examples; a
    trainer retrains from them, publishes signed versions, and the service
    hot-swaps each one. At the end: the learned model against the starting
    heuristic, on acceptance rate.
    """
    from rich.console import Console
    from rich.live import Live

    from loopline.demo.loop import run_demo
    from loopline.demo.view import live_view, plain_line, summary
    from loopline.log import LogError, open_log

    logging.getLogger("loopline").setLevel(logging.ERROR)  # the view says what happens
    console = Console()
    live = not no_live and is_terminal()
    with tempfile.TemporaryDirectory(prefix="loopline-demo-") as tmp:
        root = click.get_current_context().find_root().params.get("log_url")
        url = log_url or root or f"embedded:{tmp}/log"
        try:
            log = open_log(url, kafka_config=settings.kafka_config or None)
        except LogError as exc:
            raise CLIError(str(exc)) from None
        console.print(f"loopline demo on {url} for {duration:.0f} s (Ctrl-C stops early)")
        last_line = [0.0]

        def lines(stats) -> None:
            if stats.elapsed - last_line[0] >= 10:
                last_line[0] = stats.elapsed
                click.echo(plain_line(stats))

        try:
            if live:
                with Live(console=console, refresh_per_second=4, transient=True) as view:
                    stats = run_demo(
                        log, duration=duration, seed=seed, rate=rate, state_dir=f"{tmp}/serve",
                        on_tick=lambda s: view.update(live_view(s)),
                    )  # fmt: skip
            else:
                stats = run_demo(
                    log, duration=duration, seed=seed, rate=rate, state_dir=f"{tmp}/serve",
                    on_tick=lines,
                )  # fmt: skip
        finally:
            log.close()
        console.print(summary(stats))
