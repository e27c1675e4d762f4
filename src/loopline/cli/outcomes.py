"""``loopline outcomes``: join outcomes to decisions into labelled examples, exactly once."""

from __future__ import annotations

import time

import click

from loopline.app import AppError, load_app
from loopline.cli.errors import CLIError
from loopline.cli.interrupts import stopping
from loopline.cli.output import plural
from loopline.cli.settings import LogSettings


@click.command(
    epilog="""\b
Examples:
  loopline outcomes pymk.app:app
  loopline outcomes pymk.app:app --metrics-port 9110
  loopline train pymk.app:app --model accept --labelled pymk.labelled

\b
The application declares how outcomes become labels:
  App("pymk", ..., outcomes=Outcomes(window="1h", positive=["accepted"]))""",
)
@click.argument("app_spec", metavar="APP")
@click.option(
    "--instance",
    default="0",
    show_default=True,
    help="This joiner's name; a restarted one must keep its name.",
)
@click.option(
    "--metrics-port",
    type=int,
    metavar="PORT",
    help="Serve Prometheus metrics on 127.0.0.1:PORT/metrics.",
)
@click.option(
    "--until-caught-up",
    is_flag=True,
    help="Stop once everything present at the start is joined (and windows the clock "
    "has passed are closed).",
)
@click.pass_obj
def outcomes(
    settings: LogSettings,
    app_spec: str,
    instance: str,
    metrics_port: int | None,
    until_caught_up: bool,
) -> None:
    """Join APP's outcomes to its decisions into labelled examples, until stopped.

    Reads APP.decisions and APP.outcomes; when a decision's attribution window
    closes, one labelled example per returned item (the features as served
    plus the label) goes to APP.labelled. Outcomes that join no decision go to
    APP.outcomes-late. State is in APP-outcomes-changelog, committed with the
    input offsets: kill -9 and restart lose and repeat nothing.
    """
    from loopline.outcomes.joiner import OutcomeJoiner

    try:
        app = load_app(app_spec)
    except AppError as exc:
        raise CLIError(str(exc)) from None
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr="127.0.0.1")
    with settings.open() as log:
        try:
            joiner = OutcomeJoiner(log, app, instance=instance)
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
    click.echo(
        f"read {plural(stats.decisions, 'decision')} and {plural(stats.outcomes, 'outcome')} "
        f"in {time.monotonic() - started:.1f} s: {plural(stats.examples, 'labelled example')} "
        f"({stats.positives} positive), {stats.matched} outcomes joined, {stats.late} late, "
        f"{stats.duplicates} repeated decisions, {stats.dead_letters} dead-lettered"
    )
