"""``loopline demo``: the whole loop on a simulated professional network, in one command."""

from __future__ import annotations

import logging
import os
import tempfile

import click

from loopline.cli.errors import CLIError
from loopline.cli.interrupts import stopping
from loopline.cli.output import is_terminal
from loopline.cli.settings import LogSettings

PLAIN_EVERY = 10.0  # seconds between two progress lines without a live view


@click.command(
    epilog="""\b
Examples:
  loopline demo                                   # about 2.5 minutes, embedded log
  loopline demo --duration 60
  loopline demo --log kafka://localhost:9092      # or: loopline --log kafka://... demo
  loopline demo --duration 30 --no-live > demo.txt
  loopline demo --break-feature same_industry --at 60   # a pipeline bug; watch the alert

\b
Without --log (on the demo or on loopline itself) the demo runs on an embedded
log in a temporary directory, removed at the end. On a log you name, the run's
topics (demo-XXXXXXXX.*) and its model (demo-XXXXXXXX.pymk) stay, to look at
with 'loopline topics list', 'loopline consume' and 'loopline models list'.""",
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
    help="Run on this log (embedded:PATH or kafka://host:port); default: an embedded log in "
    "a temporary directory.",
)
@click.option("--seed", default=7, show_default=True, type=int, help="The simulation's seed.")
@click.option(
    "--rate",
    default=25.0,
    show_default=True,
    type=click.FloatRange(min=1, max=200),
    help="Ranking requests per second from the simulated application.",
)
@click.option(
    "--bad-model-at",
    default=40.0,
    show_default=True,
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="Publish a deliberately broken version this many seconds in, to watch its canary "
    "guardrail roll it back (0: never).",
)
@click.option(
    "--break-feature",
    metavar="NAME",
    help="From --at on, the members' profile pipeline drops the field this feature is computed "
    "from for 40% of the members (same_industry, same_city, seniority_gap, c_seniority): the "
    "monitor should open a coverage alert naming it.",
)
@click.option(
    "--at",
    "break_at",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="When --break-feature breaks, in seconds into the run.",
)
@click.option(
    "--dashboard-port",
    type=click.IntRange(min=0, max=65535),
    metavar="PORT",
    help="Serve the run's dashboard on 127.0.0.1:PORT (0: any free port) and print its URL.",
)
@click.option(
    "--no-live",
    is_flag=True,
    help=f"Print a line every {PLAIN_EVERY:.0f} s instead of a live view (the default when "
    "stdout is not a terminal).",
)
@click.pass_obj
def demo(
    settings: LogSettings, duration: float, log_url: str | None, seed: int, rate: float,
    bad_model_at: float, break_feature: str | None, break_at: float, no_live: bool,
    dashboard_port: int | None,
) -> None:  # fmt: skip
    """Run the whole loop on a simulated "people you may know" network.

    Members with profiles (a table topic) and activity (views, searches); the
    application asks the prediction service to rank suggested connections;
    simulated members accept with a probability that depends on hidden true
    factors; outcomes are joined to decisions into labelled examples; a
    trainer retrains from them and publishes signed versions; each one enters
    as a canary experiment against production, and the experiment watcher
    rolls it back when it does worse or makes it production when it does
    better (the service hot-swaps it). A deliberately broken version shows a
    rollback (--bad-model-at). The monitor watches it all and shows its alerts;
    --break-feature breaks a feature upstream to watch it caught. At the end: the learned model against the
    starting heuristic, on acceptance rate. Ctrl-C stops early and still
    shows it.
    """
    bad_at = bad_model_at or None
    from loopline.demo.pipeline_bug import BREAKABLE

    if break_feature is not None and break_feature not in BREAKABLE:
        raise click.BadParameter(
            f"the demo cannot break {break_feature!r}: choose one of {', '.join(BREAKABLE)}",
            param_hint="--break-feature",
        )
    breaking = {"break_feature": break_feature, "break_at": break_at}
    if dashboard_port:  # a busy port: one line now, not a traceback once the loop runs
        from loopline.cli.http_options import check_port

        check_port("127.0.0.1", dashboard_port, "--dashboard-port")
    from rich.console import Console
    from rich.live import Live

    from loopline.demo.loop import run_demo
    from loopline.demo.view import live_view, plain_line, summary
    from loopline.log import LogError, open_log
    from loopline.models.signing import HmacSigner

    logging.getLogger("loopline").setLevel(logging.ERROR)  # the view says what happens
    console = Console()
    live = not no_live and is_terminal()
    # The root command's --log, if given, counts too; $LOOPLINE_LOG does not: a newcomer's
    # first run must not write into whatever log their shell points at.
    root = click.get_current_context().find_root().params.get("log_url")
    named = log_url or root
    with tempfile.TemporaryDirectory(prefix="loopline-demo-") as tmp:
        url = named or f"embedded:{tmp}/log"
        try:
            log = open_log(url, kafka_config=settings.kafka_config or None)
        except (LogError, ImportError) as exc:
            raise CLIError(settings.redact(f"cannot open the log {url}: {exc}")) from None
        console.print(f"loopline demo on {url} for {duration:.0f} s (Ctrl-C stops early)")
        last_line, last_view = [0.0], [0.0]

        def line(stats) -> None:
            if stats.elapsed - last_line[0] >= PLAIN_EVERY:
                last_line[0] = stats.elapsed
                click.echo(plain_line(stats))

        def redraw(view: Live, stats) -> None:  # the view redraws 4 times a second, no more
            if stats.elapsed - last_view[0] >= 0.25:
                last_view[0] = stats.elapsed
                view.update(live_view(stats))

        stops = []
        signer = HmacSigner(os.urandom(32))  # the run's key: its versions, moves and dashboard

        def started(stats) -> None:
            console.print(
                f"application {stats.app}: model {stats.model}, heuristic "
                f"v{stats.heuristic} in production"
            )
            if dashboard_port is not None:
                from loopline.demo.dashboard import start_dashboard

                url, stop_dashboard = start_dashboard(log, stats.app, dashboard_port, signer)
                stops.append(stop_dashboard)
                console.print(f"dashboard on {url}")

        try:
            with stopping() as stop:
                if live:
                    with Live(console=console, refresh_per_second=4, transient=True) as view:
                        stats = run_demo(
                            log, duration=duration, seed=seed, rate=rate, stop=stop,
                            state_dir=f"{tmp}/serve", on_start=started,
                            on_tick=lambda s: redraw(view, s), bad_model_at=bad_at, **breaking,
                            signer=signer,
                        )  # fmt: skip
                else:
                    stats = run_demo(
                        log, duration=duration, seed=seed, rate=rate, stop=stop,
                        state_dir=f"{tmp}/serve", on_start=started, on_tick=line,
                        bad_model_at=bad_at, **breaking, signer=signer,
                    )  # fmt: skip
        except LogError as exc:
            raise CLIError(settings.redact(f"the demo stopped: {exc}")) from None
        finally:
            for stop_dashboard in stops:
                stop_dashboard()
            log.close()
        console.print(summary(stats))
        if stats.stopped_early:
            console.print(f"stopped early, after {stats.elapsed:.0f} s")
        if named:
            console.print(
                f"the run's topics ({stats.app}.*) and model ({stats.model}) stay on {url}"
            )
