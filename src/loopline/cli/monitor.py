"""``loopline monitor APP`` and ``loopline alerts APP``: the monitor, and the alerts it raised."""

from __future__ import annotations

import time

import click
import msgspec

from loopline.app import AppError, load_app
from loopline.cli.contracts import opened_registry
from loopline.cli.errors import CLIError
from loopline.cli.output import plural
from loopline.cli.runner_options import RunnerOptions, runner_options
from loopline.cli.settings import LogSettings
from loopline.log import LogError


@click.command(
    epilog="""\b
Examples:
  loopline monitor pymk.app:app --metrics-port 9120
  loopline monitor pymk.app:app --segment country --window 1m --window 1h
  loopline monitor pymk.app:app --webhook http://127.0.0.1:8080/alerts
  loopline alerts pymk.app:app --follow

\b
Alerts on without configuration: a feature's coverage 10 points below
training, PSI above 0.25, mean score or label outside the training profile's
99% range, AUC 0.05 below the version's test AUC (200+ labels), a source topic
silent for 10x its usual interval. Run one monitor per application.""",
)
@click.argument("app_spec", metavar="APP")
@click.option(
    "--window", "windows", multiple=True, default=("1m", "1h"), show_default=True,
    help="Tumbling window sizes (repeat the option for several).",
)  # fmt: skip
@click.option("--segment", metavar="FIELD", help="A decision context field to split by.")
@click.option(
    "--lateness", default="5s", show_default=True,
    help="How long after a window's end its records may still arrive (event time).",
)  # fmt: skip
@click.option("--webhook", metavar="URL", help="POST every alert there as JSON.")
@click.option(
    "--group", "groups", multiple=True, metavar="GROUP",
    help="A consumer group whose lag on the source topics is written (repeat the option; "
    "default: the feature processor's group).",
)  # fmt: skip
@runner_options()
@click.pass_obj
def monitor(
    settings: LogSettings,
    app_spec: str,
    windows: tuple[str, ...],
    segment: str | None,
    lateness: str,
    webhook: str | None,
    groups: tuple[str, ...],
    options: RunnerOptions,
) -> None:
    """Monitor APP's decisions, labels and sources until stopped.

    Reads APP.decisions, APP.labelled and the application's source topics, and
    writes one record per closed window and key (model, version, arm, segment)
    to APP.monitor (contract loopline.monitor): traffic, latency percentiles,
    scores, per-feature coverage, mean and drift against the version's
    training profile, and from labels: mean label, log loss, AUC and
    calibration; and per source topic its records per second, the age of its
    newest record and each consumer group's lag. Alerts are opened, updated
    and resolved on APP.alerts. State is
    in APP.monitor.changelog, committed with the input offsets: kill -9 and
    restart write every record once.
    """
    from loopline.models import ModelRegistry
    from loopline.monitor.baselines import profiles_from, test_auc_from
    from loopline.monitor.task import Monitor
    from loopline.monitor.webhook import Webhook

    try:
        app = load_app(app_spec)
        hooks = [Webhook(webhook)] if webhook else []
    except (AppError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    options.serve_metrics()
    with opened_registry(settings) as (log, registry):
        models = ModelRegistry(log)
        try:
            task = Monitor(
                log, app, profiles_from(models), registry, test_auc=test_auc_from(models),
                windows=windows, segment=segment, lateness=lateness, on_alert=hooks,
                groups=groups or None,
                instance=options.instance, commit_interval=options.commit_interval,
            )  # fmt: skip
        except ValueError as exc:
            raise CLIError(str(exc)) from None
        click.echo(
            f"monitoring {', '.join(task.topics)} into {task.output} and {task.alerts_topic} "
            f"(windows {', '.join(windows)}); Ctrl-C stops",
            err=True,
        )
        try:
            stats, seconds = options.run(task)
        finally:
            models.close()
    click.echo(
        f"read {plural(stats.decisions, 'decision')} and {plural(stats.labelled, 'labelled example')}"
        f" in {seconds:.1f} s: {plural(stats.windows, 'window')} written, "
        f"{plural(stats.alerts, 'alert change')}, {stats.late} late, "
        f"{stats.dead_letters} dead-lettered"
    )


def alert_line(alert) -> str:
    """One alert change as a line for people.

    >>> from loopline.monitor.alerts import AlertRecord
    >>> alert_line(AlertRecord(id="psi:m:1::x", alert="psi", state="opened", metric="psi",
    ...     scope="m:1::", feature="x", window="1m", start=0, end=60000, value=0.4, high=0.25,
    ...     rows=120, at=60000))
    '1970-01-01T00:01:00Z  opened    psi  m:1:: x  value 0.4 (limits -, 0.25; 120 rows; window 1m from 1970-01-01T00:00:00Z)'
    >>> alert_line(AlertRecord(id="psi:m:2::x", alert="psi", state="resolved", metric="psi",
    ...     scope="m:2::", feature="x", at=240000, reason="no window of its scope judged"))
    '1970-01-01T00:04:00Z  resolved  psi  m:2:: x  no window of its scope judged'
    """

    def when(ms: int) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))

    def num(x: float | None) -> str:
        return "-" if x is None else f"{x:.4g}"

    where = f"{alert.scope} {alert.feature}".rstrip()
    if alert.reason:
        return f"{when(alert.at)}  {alert.state:<9} {alert.alert}  {where}  {alert.reason}"
    base = "" if alert.baseline is None else f", baseline {num(alert.baseline)}"
    window = f"; window {alert.window} from {when(alert.start)}" if alert.window else ""
    return (
        f"{when(alert.at)}  {alert.state:<9} {alert.alert}  {where}  value {num(alert.value)} "
        f"(limits {num(alert.low)}, {num(alert.high)}{base}; {alert.rows} rows{window})"
    )


@click.command()
@click.argument("app_spec", metavar="APP")
@click.option("--follow", is_flag=True, help="Keep printing alerts as they come.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_obj
def alerts(settings: LogSettings, app_spec: str, follow: bool, as_json: bool) -> None:
    """List the alerts APP's monitor opened, updated and resolved (APP.alerts), oldest first."""
    from loopline.monitor.alerts import AlertRecord
    from loopline.stream import names

    try:
        app = load_app(app_spec)
    except AppError as exc:
        raise CLIError(str(exc)) from None
    topic = names.alerts(app.name)
    decode = msgspec.json.Decoder(AlertRecord).decode
    with settings.open() as log:
        try:
            ends = {p.partition: p.end for p in log.describe_topic(topic).partitions}
        except LogError:
            raise CLIError(
                f"no topic {topic}: start the monitor first (loopline monitor {app_spec})"
            ) from None
        consumer = log.consumer(None, [topic], reset="earliest")
        try:
            while follow or any(ends.values()):
                for record in consumer.poll(1000, timeout=0.5):
                    alert = decode(record.value)
                    click.echo(
                        msgspec.json.encode(alert).decode() if as_json else alert_line(alert)
                    )
                if (
                    not follow
                    and all(
                        consumer.position(tp) >= ends.get(tp.partition, 0)
                        for tp in consumer.assignment()
                    )
                    and consumer.assignment()
                ):
                    break
        except KeyboardInterrupt:
            pass
        finally:
            consumer.close()
