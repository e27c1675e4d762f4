"""``loopline outcomes run``: join outcomes to decisions into labelled examples, exactly once."""

from __future__ import annotations

import click

from loopline.app import AppError, load_app
from loopline.cli.contracts import opened_registry
from loopline.cli.errors import CLIError
from loopline.cli.output import plural
from loopline.cli.runner_options import RunnerOptions, runner_options
from loopline.cli.settings import LogSettings


@click.group()
def outcomes() -> None:
    """Outcomes joined to decisions: labelled examples for training."""


@outcomes.command(
    epilog="""\b
Examples:
  loopline outcomes run pymk.app:app
  loopline outcomes run pymk.app:app --metrics-port 9110
  loopline --log kafka://localhost:9092 outcomes run pymk.app:app --until-caught-up
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
@runner_options()
@click.pass_obj
def run(settings: LogSettings, app_spec: str, options: RunnerOptions) -> None:
    """Join APP's outcomes to its decisions into labelled examples, until stopped.

    Reads APP.decisions and APP.outcomes; when a decision's attribution window
    closes, one labelled example per returned item (the features as served
    plus the label) goes to APP.labelled. Outcomes that join no decision go to
    APP.outcomes.late. State is in APP.outcomes.changelog, committed with the
    input offsets: kill -9 and restart lose and repeat nothing. Windows close
    by event time, and by the wall clock once everything is read. Ctrl-C or
    SIGTERM commits what was joined and stops.
    """
    from loopline.outcomes.joiner import OutcomeJoiner

    try:
        app = load_app(app_spec)
    except AppError as exc:
        raise CLIError(str(exc)) from None
    options.serve_metrics()
    with opened_registry(settings) as (log, registry):
        try:
            joiner = OutcomeJoiner(
                log,
                app,
                registry,
                instance=options.instance,
                commit_interval=options.commit_interval,
            )
        except AppError as exc:
            raise CLIError(str(exc)) from None
        click.echo(
            f"joining {joiner.outcomes_topic} to {joiner.decisions_topic} into "
            f"{joiner.labelled} (window {app.outcomes.window}); Ctrl-C stops",  # type: ignore[union-attr]
            err=True,
        )
        stats, seconds = options.run(joiner)
    extra = ""
    if stats.dropped:
        extra += f", {stats.dropped} label-0 examples dropped (negatives=False)"
    if stats.late_decisions:
        extra += f", {plural(stats.late_decisions, 'decision')} too late to join"
    click.echo(
        f"read {plural(stats.decisions, 'decision')} and {plural(stats.outcomes, 'outcome')} "
        f"in {seconds:.1f} s: {plural(stats.examples, 'labelled example')} "
        f"({stats.positives} positive), {plural(stats.matched, 'outcome')} joined, "
        f"{stats.late} late (to {joiner.late}), {plural(stats.duplicates, 'repeated decision')}, "
        f"{stats.dead_letters} dead-lettered{extra}"
    )
