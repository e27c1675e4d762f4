"""``loopline dataset``: build point-in-time training datasets, and build them again.

A dataset is a Parquet file of feature vectors, one per spine row, each as
the online system would have read it at the row's instant, with a manifest
(``<out>.manifest.json``) pinning the exact topic offsets read, so that
``loopline dataset rebuild`` makes the same file byte for byte later.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from loopline.app import AppError, load_app
from loopline.cli.contracts import opened_registry
from loopline.cli.entity_options import entity_columns, entity_option, parse_entities
from loopline.cli.errors import CLIError
from loopline.cli.output import is_terminal, plural
from loopline.cli.settings import LogSettings
from loopline.features.offline.datasets import (
    Manifest,
    Progress,
    application_spec,
    build_dataset,
    rebuild,
)
from loopline.features.offline.events import BuildError
from loopline.features.offline.manifests import manifest_path, read_manifest


@contextmanager
def _bars() -> Iterator[Progress | None]:
    """A rich progress bar per topic read, on stderr (only on a terminal)."""
    if not is_terminal("stderr"):
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    columns = [
        *Progress.get_default_columns()[:1],
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=Console(stderr=True), transient=True) as bars:
        tasks: dict[str, object] = {}

        def advance(topic: str, read: int, total: int) -> None:
            if topic not in tasks:
                tasks[topic] = bars.add_task(f"read {topic}", total=total)
            bars.update(tasks[topic], completed=read)  # type: ignore[arg-type]

        yield advance


@contextmanager
def _user_errors() -> Iterator[None]:
    """Errors in the application, the spine or the manifest, as one ``error:`` line."""
    try:
        yield
    except (AppError, BuildError) as exc:
        raise CLIError(str(exc)) from None


def _summary(verb: str, out: str, manifest: Manifest) -> str:
    read = sum(t.records for t in manifest.topics)
    undecodable = sum(t.undecodable for t in manifest.topics)
    skipped = f", {undecodable} undecodable skipped" if undecodable else ""
    unusable = sum(manifest.unusable.values())
    if unusable:
        skipped += f", {unusable} unusable left out as dead-lettered online"
    return (
        f"{verb} {out}: {plural(manifest.rows, 'row')} x {plural(len(manifest.features), 'feature')}"
        f" from {plural(len(manifest.topics), 'topic')} ({plural(read, 'record')} read{skipped});"
        f" manifest {manifest_path(out)}"
    )


# More than this share of rows before a table's first record is no coincidence.
BEFORE_FIRST_WARNING = 0.5


def _say_defaults(manifest: Manifest) -> None:
    """On stderr: the share of rows each feature gave its default, and what looks broken."""
    rows = manifest.rows
    if not rows or not any(manifest.defaulted.values()):
        return  # every row had a value for every feature: nothing to say
    shares = ", ".join(f"{n} {c / rows:.0%}" for n, c in manifest.defaulted.items())
    click.echo(f"rows given the default: {shares}", err=True)
    for name, count in manifest.derived_errors.items():
        click.echo(
            f"warning: derived feature {name!r} raised on {count} of {plural(rows, 'row')}, "
            "which got its default: check its function (`loopline features get` shows the "
            "errors online too)",
            err=True,
        )
    for topic, count in manifest.before_first_record.items():
        if count > rows * BEFORE_FIRST_WARNING:
            click.echo(
                f"warning: table of topic {topic!r} has no record before {count} of "
                f"{plural(rows, 'spine row')}' instants, which got its defaults: was it "
                "ingested without --time-column? Its records are then timed at ingestion; "
                "ingest it again with --time-column COLUMN",
                err=True,
            )


@click.group()
def dataset() -> None:
    """Datasets: point-in-time feature vectors for training, pinned to exact offsets.

    \b
    Examples:
      loopline dataset build shop.features:app --spine labels.csv --out train.parquet
      loopline dataset build shop.features:app --spine outcomes --out train.parquet
      loopline dataset rebuild train.parquet.manifest.json --out again.parquet
    """


@dataset.command(
    "build",
    epilog="""\b
Examples:
  loopline dataset build shop.features:app --spine labels.csv --out train.parquet
  loopline dataset build shop.features:app --spine labels.parquet --out train.parquet \\
      --entity member --time-column decided_at
  loopline dataset build shop.features:app --spine pairs.csv --out train.parquet \
      --entity user=user_id --entity item=item_id     # user, item and user x item features
  loopline dataset build shop.features:app --spine outcomes --out train.parquet

\b
The spine needs an entity column (named 'entity' or as the entity's key field,
e.g. member_id) and a time column ('at', else 'timestamp', or --time-column)
holding epoch milliseconds, ISO 8601 text or timestamps; other columns, such
as a label, are copied to the dataset. A topic spine reads its records' fields;
without a time field, a record's log timestamp is its instant.""",
)
@click.argument("app")
@click.option(
    "--spine",
    required=True,
    metavar="FILE_OR_TOPIC",
    help="The rows to give features to: a Parquet, CSV or JSON lines file, or a topic.",
)
@click.option(
    "--out",
    required=True,
    metavar="FILE.parquet",
    type=click.Path(dir_okay=False),
    help="Where to write the dataset; the manifest goes to FILE.parquet.manifest.json.",
)
@entity_option
@click.option(
    "--time-column",
    metavar="COLUMN",
    help="The spine's time column (default: 'at', else 'timestamp').",
)
@click.option(
    "--allow-missing-history",
    is_flag=True,
    help="Give the features' defaults to spine rows whose table history compaction or "
    "retention removed (counted in the manifest), instead of refusing the build.",
)
@click.pass_obj
def build_command(
    settings: LogSettings,
    app: str,
    spine: str,
    out: str,
    entity_values: tuple[str, ...],
    time_column: str | None,
    allow_missing_history: bool,
) -> None:
    """Build the dataset of the features of APP (module:attribute) for every spine row.

    Each row gets the value every feature had at the row's instant, computed
    from the log with only what the online system could have known then:
    records that had arrived by then, not late, with an event time before it.
    The topics are pinned first, to their committed ends at the start of the
    build, so records appended while it runs are not used. Undecodable
    records are skipped and counted, as the online processor dead-letters them.
    A table's value at a row's instant needs the table topic's history: when
    compaction or retention removed it, the build is refused, naming the table
    and how many rows (--allow-missing-history gives them the defaults).
    """
    entity, named = parse_entities(entity_values)
    with (
        _user_errors(),
        opened_registry(settings) as (log, registry),
        _bars() as progress,
    ):
        application = load_app(app)
        manifest = build_dataset(
            log,
            application,
            spine,
            out,
            registry=registry,
            entity=entity,
            entities=entity_columns(application, named) if named else None,
            time_column=time_column,
            progress=progress,
            allow_missing_history=allow_missing_history,
        )
    click.echo(_summary("built", out, manifest))
    _say_defaults(manifest)
    for topic, rows in manifest.missing_history.items():
        click.echo(
            f"warning: table of topic {topic!r}: {plural(rows, 'spine row')} got the defaults, "
            f"the history {'it' if rows == 1 else 'they'} needed being gone (recorded in the "
            "manifest as missing_history)",
            err=True,
        )


@dataset.command(
    "rebuild",
    epilog="""\b
Examples:
  loopline dataset rebuild train.parquet.manifest.json --out again.parquet
  loopline dataset rebuild train.parquet.manifest.json --out again.parquet --spine copy.csv""",
)
@click.argument("manifest", type=click.Path(dir_okay=False))
@click.option(
    "--out",
    required=True,
    metavar="FILE.parquet",
    type=click.Path(dir_okay=False),
    help="Where to write the rebuilt dataset (and its manifest).",
)
@click.option(
    "--app",
    "app",
    metavar="MODULE:ATTRIBUTE",
    help="The application, if it is no longer where the manifest says "
    "(its features must be unchanged).",
)
@click.option(
    "--spine",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="The spine file, if it moved (its content must be unchanged).",
)
@click.pass_obj
def rebuild_command(
    settings: LogSettings, manifest: str, out: str, app: str | None, spine: str | None
) -> None:
    """Build the dataset of MANIFEST again, reading exactly the offsets it names.

    The new file is byte-identical to the original, however many records
    were appended since; if the log no longer holds those records
    (retention, compaction) or the features changed, it says so and fails.
    """
    with _user_errors():
        application = load_app(application_spec(read_manifest(manifest), app))
    with (
        _user_errors(),
        opened_registry(settings) as (log, registry),
        _bars() as progress,
    ):
        new = rebuild(
            log,
            manifest,
            out,
            app=application,
            spine=Path(spine) if spine else None,
            registry=registry,
            progress=progress,
        )
    click.echo(_summary("rebuilt", out, new) + f"; identical (sha256 {new.sha256[:12]}...)")
