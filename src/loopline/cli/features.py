"""``loopline features``: run the online feature processor, read vectors, list declarations."""

from __future__ import annotations

import json

import click

from loopline.app import App, AppError, load_app
from loopline.cli.contracts import opened_registry
from loopline.cli.errors import CLIError
from loopline.cli.output import echo_table, plural
from loopline.cli.runner_options import RunnerOptions, runner_options
from loopline.cli.settings import LogSettings
from loopline.features.declarations import DeclarationError


def _app(spec: str) -> App:
    try:
        return load_app(spec)
    except AppError as exc:
        raise CLIError(str(exc)) from None


@click.group(
    epilog="""\b
Examples:
  loopline features list shop.app:app
  loopline features run shop.app:app --metrics-port 9108
  loopline features get shop.app:app m-42 --entity member""",
)
def features() -> None:
    """Online features: compute them from the sources, and read them."""


@features.command(
    "list",
)
@click.argument("app_spec", metavar="APP")
def list_features(app_spec: str) -> None:
    """The features APP (module:attribute) declares, with their sources."""
    app = _app(app_spec)
    rows = []
    for group in app.features.aggregations:
        for f in group.features:
            rows.append(
                [
                    f.name,
                    group.entity.name,
                    f"{f.kind} {f.window.name}",
                    group.source,
                    str(f.default),
                ]
            )
    for table in app.features.tables:
        for f in table.features:
            rows.append([f.name, table.entity.name, "latest", table.source, str(f.default)])
    for d in app.features.derived:
        rows.append([d.name, "", "derived", ", ".join(d.inputs), str(d.default)])
    echo_table(
        f"features of {app.name} (fingerprint {app.features.fingerprint()[:10]})",
        ["feature", "entity", "kind", "source", "default"],
        rows,
    )


@features.command(
    epilog="""\b
Examples:
  loopline features run shop.app:app
  loopline features run shop.app:app --instance b --metrics-port 9109
  loopline --log kafka://localhost:9092 features run shop.app:app --until-caught-up

\b
On Kafka, start several with different --instance names: they split the
source partitions, and take over those of one that stops or dies.""",
)
@click.argument("app_spec", metavar="APP")
@runner_options()
@click.pass_obj
def run(settings: LogSettings, app_spec: str, options: RunnerOptions) -> None:
    """Compute APP's online features from its source topics, exactly once, until stopped.

    State is kept in changelog topics (APP.features.*.changelog), records that
    arrive too late in APP.features.late, unreadable ones in SOURCE.dlq.
    Ctrl-C or SIGTERM commits what was processed and stops.
    """
    from loopline.features.processor import FeatureProcessor

    app = _app(app_spec)
    options.serve_metrics()
    with opened_registry(settings) as (log, registry):
        try:
            processor = FeatureProcessor(
                log,
                app,
                registry=registry,
                instance=options.instance,
                commit_interval=options.commit_interval,
            )
        except AppError as exc:
            raise CLIError(str(exc)) from None
        click.echo(
            f"features run {app.name}: {plural(len(processor.sources), 'source')} "
            f"({', '.join(processor.sources)}), group {processor.names.group}",
            err=True,
        )
        stats, seconds = options.run(processor)
    click.echo(
        f"processed {plural(stats.records, 'record')} in {seconds:.1f} s: "
        f"{stats.late} late (to {processor.names.late}), {stats.dead_letters} dead-lettered, "
        f"{plural(stats.commits, 'commit')}"
    )


@features.command(
    epilog="""\b
Examples:
  loopline features get shop.app:app m-42
  loopline features get shop.app:app m-42 m-43 --feature clicks_1h --feature country
  loopline features get shop.app:app i-7 --entity item --at 2024-05-01T10:00:00Z""",
)
@click.argument("app_spec", metavar="APP")
@click.argument("entity_ids", metavar="ENTITY_ID...", nargs=-1, required=True)
@click.option(
    "--entity",
    "entity_name",
    metavar="NAME",
    help="The entity the ids are of (default: the only one APP declares).",
)
@click.option(
    "--feature",
    "names",
    metavar="NAME",
    multiple=True,
    help="Only these features (repeatable; default: all of the entity).",
)
@click.option(
    "--at", metavar="TIME", help="Evaluate at this instant (ISO 8601 or epoch ms; default: now)."
)
@click.pass_obj
def get(
    settings: LogSettings,
    app_spec: str,
    entity_ids: tuple[str, ...],
    entity_name: str | None,
    names: tuple[str, ...],
    at: str | None,
) -> None:
    """Print the feature vector of each ENTITY_ID as one JSON line, as served now.

    Reads the changelog that `loopline features run` writes, so it shows
    what a serving process would read.
    """
    from loopline.features.online.times import event_time_ms
    from loopline.features.store import FeatureStore

    app = _app(app_spec)
    entities = sorted({g.entity.name for g in (*app.features.aggregations, *app.features.tables)})
    if entity_name is None:
        if len(entities) != 1:
            raise CLIError(
                f"{app.name} declares features of {', '.join(entities) or 'no entity'}: "
                "say which with --entity"
            )
        entity_name = entities[0]
    instant = None
    if at is not None:
        try:
            instant = event_time_ms(int(at) if at.isdigit() else at)
        except ValueError as exc:
            raise CLIError(f"--at: {exc}") from None
    with (
        opened_registry(settings) as (log, _),
        FeatureStore(log, app, derived_warnings=False) as store,
    ):
        store.catch_up()
        try:
            vectors = store.get(entity_name, list(entity_ids), list(names) or None, at=instant)
        except DeclarationError as exc:
            raise CLIError(str(exc)) from None
        failures = store.derived_failures()
    for entity_id, vector in zip(entity_ids, vectors, strict=True):
        click.echo(json.dumps({"entity": entity_id, **vector}, default=str))
    for name, (count, first) in failures.items():
        click.echo(
            f"warning: derived feature {name!r} raised for {count} of {len(entity_ids)} "
            f"{'entity' if len(entity_ids) == 1 else 'entities'} and took its default "
            f"({first}): fix its function",
            err=True,
        )
