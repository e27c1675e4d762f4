"""``loopline experiments run``: learn from outcomes and act on running experiments."""

from __future__ import annotations

import click

from loopline.app import AppError, load_app
from loopline.cli.contracts import opened_registry
from loopline.cli.errors import CLIError
from loopline.cli.output import plural
from loopline.cli.runner_options import RunnerOptions, runner_options
from loopline.cli.settings import LogSettings


@click.command(
    epilog="""\b
Examples:
  loopline experiments run pymk.app:app
  loopline experiments run pymk.app:app --metrics-port 9111
  loopline --log kafka://localhost:9092 experiments run pymk.app:app --instance b

\b
It reads APP.labelled (run `loopline outcomes run APP` too) and acts only on
running experiments; start one with `loopline experiments start`.""",
)
@click.argument("app_spec", metavar="APP")
@click.option(
    "--interval",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="The least time between two looks at the experiments.",
)
@runner_options()
@click.pass_obj
def run(settings: LogSettings, app_spec: str, interval: float, options: RunnerOptions) -> None:
    """Watch APP's experiments: bandit weights, guardrails, canary steps, until stopped.

    Counts the outcomes of every experiment arm from APP.labelled, and the
    decisions it served with their latency from APP.decisions (exactly once:
    the counts are in APP.experiments.changelog, committed with the input
    offsets; kill -9 and restart, here or on another machine, go on from
    them). At most once every --interval seconds it looks at each running
    experiment: a treatment that breaches a guardrail (by the anytime-valid
    sequential test) is rolled back, with the metric, estimate, interval and
    outcomes on the record; a winner is concluded when the experiment says
    auto_conclude (its alias moves to the winner); a canary takes its next
    step; a bandit's weights follow Thompson sampling, never below its floor.
    A change a person made meanwhile is never undone. Ctrl-C or SIGTERM
    commits what was counted and stops.
    """
    from loopline.experiments.watcher import ExperimentWatcher

    try:
        app = load_app(app_spec)
    except AppError as exc:
        raise CLIError(str(exc)) from None
    options.serve_metrics()
    with opened_registry(settings) as (log, contracts):
        try:
            watcher = ExperimentWatcher(
                log,
                app,
                contracts,
                instance=options.instance,
                commit_interval=options.commit_interval,
                interval=interval,
            )
        except AppError as exc:
            raise CLIError(str(exc)) from None
        click.echo(
            f"watching the experiments of {app.name} from {watcher.labelled} "
            f"(group {watcher.group}); Ctrl-C stops",
            err=True,
        )
        stats, seconds = options.run(watcher)
    click.echo(
        f"read {plural(stats.examples, 'outcome')} and {plural(stats.decisions, 'decision')} "
        f"of experiments in {seconds:.1f} s "
        f"({stats.outside} outcomes of none, {stats.dead_letters} dead-lettered): "
        f"{plural(stats.weights, 'bandit weight change')}, {plural(stats.steps, 'canary step')}, "
        f"{plural(stats.rollbacks, 'rollback')}, {plural(stats.conclusions, 'conclusion')}, "
        f"{plural(stats.conflicts, 'change')} refused as someone changed the experiment first"
    )
    for change in stats.changes:
        if change.state != "running":
            click.echo(f"  {change.name}: {change.state.replace('_', ' ')}: {change.reason}")
