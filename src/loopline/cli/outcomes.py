"""``loopline outcomes``: join outcomes to decisions into labelled examples, exactly once."""

from __future__ import annotations

import time

import click

from loopline.app import AppError, load_app
from loopline.cli.contracts import opened_registry
from loopline.cli.errors import CLIError
from loopline.cli.interrupts import stopping
from loopline.cli.output import plural
from loopline.cli.settings import LogSettings


@click.command(
    epilog="""\b
Examples:
  loopline outcomes pymk.app:app
  loopline outcomes pymk.app:app --metrics-port 9110
  loopline --log kafka://localhost:9092 outcomes pymk.app:app --until-caught-up
  loopline train pymk.app:app --model accept --labelled pymk.labelled

\b
The application declares how outcomes become labels:
  from loopline.outcomes import Outcomes
  App("pymk", ..., outcomes=Outcomes(window="1h", positive=["accepted"]))

\b
Run one per application: partition p of APP.decisions is joined with
partition p of APP.outcomes.""",
)
@click.argument("app_spec", metavar="APP")
@click.option(
    "--instance",
    default="0",
    show_default=True,
    help="This joiner's name; a restarted one must keep its name.",
)
@click.option(
    "--commit-interval",
    default=0.5,
    show_default=True,
    type=float,
    metavar="SECONDS",
    help="How long a labelled example may wait before it is committed (and readable).",
)
@click.option(
    "--metrics-port",
    type=int,
    metavar="PORT",
    help="Serve Prometheus metrics (loopline_outcomes_*) on PORT, path /metrics.",
)
@click.option(
    "--metrics-host", default="127.0.0.1", show_default=True, help="Address for --metrics-port."
)
@click.option(
    "--until-caught-up",
    is_flag=True,
    help="Stop once nothing is left to read (and the windows the clock has passed are closed).",
)
@click.pass_obj
def outcomes(
    settings: LogSettings,
    app_spec: str,
    instance: str,
    commit_interval: float,
    metrics_port: int | None,
    metrics_host: str,
    until_caught_up: bool,
) -> None:
    """Join APP's outcomes to its decisions into labelled examples, until stopped.

    Reads APP.decisions and APP.outcomes; when a decision's attribution window
    closes, one labelled example per returned item (the features as served
    plus the label) goes to APP.labelled. Outcomes that join no decision go to
    APP.outcomes-late. State is in APP-outcomes-changelog, committed with the
    input offsets: kill -9 and restart lose and repeat nothing. Windows close
    by event time, and by the wall clock once everything is read. Ctrl-C or
    SIGTERM commits what was joined and stops.
    """
    from loopline.outcomes.joiner import OutcomeJoiner

    try:
        app = load_app(app_spec)
    except AppError as exc:
        raise CLIError(str(exc)) from None
    if metrics_port is not None:
        from loopline.http.server import start_metrics_server

        start_metrics_server(metrics_port, addr=metrics_host)
    with opened_registry(settings) as (log, registry):
        try:
            joiner = OutcomeJoiner(
                log, app, registry, instance=instance, commit_interval=commit_interval
            )
        except AppError as exc:
            raise CLIError(str(exc)) from None
        click.echo(
            f"joining {joiner.outcomes_topic} to {joiner.decisions_topic} into "
            f"{joiner.labelled} (window {app.outcomes.window}); Ctrl-C stops",  # type: ignore[union-attr]
            err=True,
        )
        started = time.monotonic()
        with stopping() as stop:
            try:
                stats = joiner.run(stop, until_caught_up=until_caught_up)
            finally:
                joiner.close()
    extra = ""
    if stats.dropped:
        extra += f", {stats.dropped} label-0 examples dropped (negatives=False)"
    if stats.late_decisions:
        extra += f", {plural(stats.late_decisions, 'decision')} too late to join"
    click.echo(
        f"read {plural(stats.decisions, 'decision')} and {plural(stats.outcomes, 'outcome')} "
        f"in {time.monotonic() - started:.1f} s: {plural(stats.examples, 'labelled example')} "
        f"({stats.positives} positive), {plural(stats.matched, 'outcome')} joined, "
        f"{stats.late} late (to {joiner.late}), {plural(stats.duplicates, 'repeated decision')}, "
        f"{stats.dead_letters} dead-lettered{extra}"
    )
